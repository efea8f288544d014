"""Tell the user when a run ends (finished, stopped, failed, lost) while they look at something else.

``RunWatcher`` compares each look at the runs table with the previous one; a run seen running that is now in a
final state is reported once. Runs that had already ended when the console started are never reported. How
loudly is the user's choice: ``GPT_CONSOLE_NOTIFY`` = ``bell`` (a toast and the terminal bell, the default),
``toast`` (no bell) or ``off``; the command palette switches it for the session. No Textual here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

NOTIFY_ENV = "GPT_CONSOLE_NOTIFY"
NOTIFY_MODES = ("bell", "toast", "off")
ENDED_STATES = ("finished", "stopped", "failed", "lost")


def notify_mode(environ=os.environ) -> str:
    value = environ.get(NOTIFY_ENV, "").strip().lower()
    return value if value in NOTIFY_MODES else NOTIFY_MODES[0]


@dataclass(frozen=True)
class RunEnded:
    run_id: str
    title: str      # the user's name for it, else the id
    state: str
    reason: str

    @property
    def severity(self) -> str:
        return "error" if self.state in ("failed", "lost") else "information"

    def message(self) -> str:
        reason = self.reason.strip().splitlines()[0] if self.reason.strip() else ""
        if len(reason) > 160:
            reason = reason[:159].rstrip() + "…"
        return f"{self.title} {self.state}" + (f": {reason}" if reason else "") + \
            ("" if self.title == self.run_id else f" ({self.run_id})")


class RunWatcher:
    def __init__(self) -> None:
        self._states: dict[str, str] | None = None  # None until the first look (the baseline)

    def look(self, rows) -> list[RunEnded]:
        """Rows of a fresh runs table (runs_model.RunRow); the runs that ended since the previous look."""
        previous = self._states
        self._states = {row.run_id: row.state for row in rows}
        if previous is None:
            return []
        return [RunEnded(row.run_id, row.title, row.state, row.reason) for row in rows
                if previous.get(row.run_id) == "running" and row.state in ENDED_STATES]
