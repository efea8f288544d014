"""Messages that background threads post to the UI. Each collapses with an unprocessed one of its kind."""

from __future__ import annotations

from textual.message import Message


class RunUpdated(Message):
    """New events or output for the run a dashboard follows (the data itself is in the shared RunView)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def can_replace(self, message: Message) -> bool:
        # A burst of updates for one run is one redraw: the newest notification stands for all of them.
        return isinstance(message, RunUpdated) and message.run_id == self.run_id


class RunsRefreshed(Message):
    """A fresh snapshot of the runs table rows."""

    def __init__(self, rows: list) -> None:
        super().__init__()
        self.rows = rows

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsRefreshed)
