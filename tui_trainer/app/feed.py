"""Follow one run from a background thread: its event log into a RunView, its trainer log into a line buffer.

The UI is told "something changed" through a callback that posts a Message whose ``can_replace`` makes a burst
of notifications collapse into one; the widgets then read the view under its lock. However fast events arrive
(replaying a million-line log, or a trainer emitting hundreds per second), the UI does one redraw per frame it
can afford, never one per event.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Callable

from tui_trainer.app.run_view import RunView
from tui_trainer.app.runs_model import resume_step

EVENTS_PER_BATCH = 5_000        # events folded per lock hold: short enough that a redraw never waits long
OUTPUT_LINES_KEPT = 400
OUTPUT_BACKLOG_BYTES = 64 << 10  # on open, show the end of a long trainer log, not all of it
STATUS_EVERY = 1.0               # seconds between process-status checks (reads /proc, cheap but not free)


class TextTail:
    """The last lines of a growing text file, reading only new bytes."""

    def __init__(self, path: str | os.PathLike, keep: int = OUTPUT_LINES_KEPT) -> None:
        self.path = Path(path)
        self.lines: deque[str] = deque(maxlen=keep)
        self.total = 0  # lines ever read (a pane appends the ones it has not shown yet)
        self._offset: int | None = None
        self._partial = b""

    def poll(self) -> list[str]:
        """New complete lines since the last call."""
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if self._offset is None:
                    self._offset = max(0, size - OUTPUT_BACKLOG_BYTES)
                    if self._offset:
                        f.seek(self._offset)
                        f.readline()  # skip the cut line
                        self._offset = f.tell()
                if size < self._offset:  # truncated or replaced
                    self._offset, self._partial = 0, b""
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        if not data:
            return []
        self._offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return []
        self._partial = data[cut + 1:]
        new = data[:cut].decode("utf-8", errors="replace").replace("\r", "").split("\n")
        self.lines.extend(new)
        self.total += len(new)
        return new


class RunFeed:
    """Keeps a RunView up to date with a run. ``follow`` blocks; call it from a thread worker."""

    def __init__(self, run, view: RunView, notify: Callable[[], None], *, interval: float = 0.1) -> None:
        self.run = run
        self.view = view
        self.notify = notify
        self.interval = interval
        self.output = TextTail(run.log_file)
        self.status = None          # tui_trainer.runs.RunStatus, refreshed every STATUS_EVERY seconds
        self.read_error: str | None = None  # shown in the dashboard's banner while reading fails
        self.resume_from: int | None = None  # checkpoint step ``r`` would resume from; None = r cannot work
        self.follower = run.follower()
        self._restarts = 0

    def poll_once(self) -> bool:
        """Fold whatever is new; True if anything changed. Reads at most one batch of events."""
        changed = False
        events = self.follower.poll(max_events=EVENTS_PER_BATCH)
        if events:
            if self.follower.restarts != self._restarts:  # the log was replaced: rebuild from its content
                self._restarts = self.follower.restarts
                self.view.reset()
            self.view.apply_many(events)
            changed = True
        with self.view.lock:  # the UI copies output.lines under this lock; a deque must not grow meanwhile
            if self.output.poll():
                changed = True
        return changed

    def refresh_status(self) -> bool:
        try:
            status = self.run.status()
        except Exception:  # status reads /proc and files another process writes: keep the last one, retry
            return False
        resume_from = resume_step(self.run, status.state, self.view.max_steps)
        changed = status != self.status or resume_from != self.resume_from
        # resume_from first: whoever sees the new status (another thread) must see its resume offer too.
        self.resume_from = resume_from
        self.status = status
        return changed

    def follow(self, cancelled: Callable[[], bool]) -> None:
        last_status = 0.0
        while not cancelled():
            try:
                changed = self.poll_once()
            except OSError as e:  # the run directory vanished or a disk error: say so, keep trying
                self.read_error = f"cannot read {self.run.events_file}: {e}"
                changed = True
                time.sleep(1.0)
            else:
                if self.read_error:
                    self.read_error, changed = None, True
            now = time.monotonic()
            if now - last_status >= STATUS_EVERY:
                changed = self.refresh_status() or changed
                last_status = now
            if changed:
                self.notify()
            else:  # while a backlog remains (replay) every poll changes something: no sleeping then
                time.sleep(self.interval)
