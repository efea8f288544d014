"""gpt-console, the Textual console. Never imports torch: it must start fast over SSH.

``run_app`` is the entry point ``tui_trainer.cli`` calls; the Textual app itself is imported only then, so
importing this package stays cheap.
"""

from __future__ import annotations


def run_app(config_path: str | None = None, runs_root: str | None = None) -> None:
    """Open the console (on ``config_path`` in the editor, if given) over the runs in ``runs_root``."""
    from tui_trainer.app.console import run_app as _run_app
    _run_app(config_path=config_path, runs_root=runs_root)


__all__ = ["run_app"]
