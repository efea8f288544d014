"""The one base class of problems the user can fix. Stdlib only (the console imports the config through it).

A trainer shows a ``UserError`` as its message alone — one paragraph naming the thing and the fix, no traceback —
and exits with code 2; anything else is a bug and gets its traceback. Every such error of the lib derives from
it (ConfigError, DataError, TokenizerUnavailable, ResumeConflict, SetupError, BatchSizeError); the channel's
DiskFull is registered below, because the channel imports nothing of the trainer.
"""

from __future__ import annotations

import abc


class UserError(Exception, metaclass=abc.ABCMeta):
    """A problem the user can fix (a config value, missing data, a busy run directory, a full disk)."""


class BatchSizeError(UserError, ValueError):
    """optim.total_batch_size does not split into micro-batches over the ranks actually running."""


def is_user_error(e: BaseException) -> bool:
    if not isinstance(e, UserError):
        from tui_trainer.channel.diskfull import DiskFull  # registered lazily: importing it costs nothing later
        UserError.register(DiskFull)
    return isinstance(e, UserError)


def describe_failure(e: BaseException, run_dir) -> tuple[str, str]:
    """(message, traceback) for a failure that ends a run. A user error — a UserError, or a raw ENOSPC/EDQUOT from
    any write (the run directory's first files, a log) — is one paragraph naming the thing and the fix, with an
    empty traceback; anything else is a bug: its type and message, and the traceback."""
    import traceback
    from tui_trainer.channel.diskfull import describe, is_disk_full
    if is_disk_full(e):
        return describe(e, run_dir), ""
    if is_user_error(e):
        return str(e), ""
    return f"{type(e).__name__}: {e}", traceback.format_exc()
