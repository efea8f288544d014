"""Errors a user can cause while working with runs. Each message names the thing and the fix."""

from __future__ import annotations


class RunError(Exception):
    """Base class: ``str(error)`` is a complete, user-facing paragraph (no traceback needed)."""


class RunNotFound(RunError, LookupError):
    pass


class AmbiguousRun(RunError, LookupError):
    pass


class RunIsRunning(RunError):
    pass


class RunNotRunning(RunError):
    pass


class LaunchError(RunError):
    pass


class ControlTimeout(RunError, TimeoutError):
    pass
