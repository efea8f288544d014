"""EventWriter: append schema events to the run's JSONL log from a background thread, never blocking training.

``emit`` only stamps the time and puts the event on a bounded queue; a daemon thread assigns ``seq``, writes the
lines and flushes. If the queue is full the event is dropped and counted, and the next write adds a ``log`` event
saying how many were lost. A log that already exists (a resumed run) is continued: ``seq`` picks up after its last
complete line, and a torn last line (a crash mid-write) is closed off so it cannot swallow the next event.

Stdlib only. Non-master ranks construct it with ``enabled=False`` and every call is a no-op.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .diskfull import describe, is_disk_full
from .private_files import open_private
from .schema import SCHEMA_VERSION

_TAIL_BYTES = 64 * 1024
_MAX_PENDING = 10_000  # lines kept for a retry while the disk is full; older ones are dropped
_STOP = object()


def last_seq(path: str | os.PathLike) -> tuple[int | None, bool]:
    """(seq of the last complete event line or None, whether the file ends in a torn line)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, False
    if size == 0:
        return None, False
    with path.open("rb") as f:
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read()
    torn = not tail.endswith(b"\n")
    for line in reversed(tail.splitlines()):
        try:
            seq = json.loads(line).get("seq")
        except (ValueError, AttributeError, RecursionError):
            continue
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
            return seq, torn
    return None, torn


class EventWriter:
    def __init__(self, path: str | os.PathLike, *, enabled: bool = True, max_queue: int = 10_000):
        self.path = Path(path)
        self.enabled = enabled
        self.dropped = 0           # events lost to a full queue, total
        self.write_errors = 0
        # The current write problem (e.g. "disk full: ..."), None once a write succeeds again. The trainer polls
        # it: a run whose log cannot be written must not go on silently.
        self.write_failure: str | None = None
        self.failure_reported = False  # the trainer told the user why the run failed: add no second message
        self.last_emit = time.time()  # when emit() was last called: heartbeats fill only the silences
        self._unreported_drops = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        previous, torn = last_seq(self.path)
        self._next_seq = 0 if previous is None else previous + 1
        # Unbuffered bytes: after a failed write the file is cut back to its last whole line (a full disk
        # must not leave a torn line), and the lines that did not fit are retried with the next batch.
        self._file = open_private(self.path, "ab", buffering=0)
        self._good_size = os.fstat(self._file.fileno()).st_size  # 0 for a FIFO (tests, `tail`-like readers)
        self._pending: list[bytes] = []
        if torn:
            self._pending.append(b"\n")
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def emit(self, type: str, **payload: Any) -> None:
        """Queue one event; returns immediately. Dropped (and counted) if the writer is far behind."""
        if not self.enabled or self._thread is None:
            return
        self.last_emit = now = time.time()
        event = {"t": now, "type": type, **payload}
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self._unreported_drops += 1

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, then stop the thread and close the file."""
        if self._thread is None:
            return
        thread, self._thread = self._thread, None
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:  # the disk stalled for `timeout`: give up rather than hang the trainer's exit
            return
        thread.join(timeout)

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------- background thread
    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while True:  # drain what is already there, so one flush covers a burst
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [e for e in batch if e is not _STOP]
            self._write(batch)
        self._file.close()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        with self._lock:
            drops, self._unreported_drops = self._unreported_drops, 0
        if drops:
            batch.append({"t": time.time(), "type": "log", "level": "warning",
                          "message": f"event writer fell behind and dropped {drops} event(s)"})
        for event in batch:
            record = {"v": SCHEMA_VERSION, "seq": self._next_seq, **event}
            self._next_seq += 1
            # NaN/inf (a diverged loss) are written as Python's json reads them back: NaN, Infinity.
            self._pending.append(json.dumps(record, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
        if not self._pending:  # close() with nothing queued: writing "\n" would leave a blank line in the log
            return
        data = b"".join(self._pending)
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view):]
        except OSError as e:  # a full disk must not kill training: cut back, keep the lines, tell the trainer
            self._cut_back()
            self.write_errors += 1
            self.write_failure = (describe(e, self.path) if is_disk_full(e) else
                                  f"cannot write events to {self.path}: {e}")
            if self.write_errors == 1 and not self.failure_reported:
                print(f"gpt-console: {self.write_failure}", file=sys.stderr, flush=True)
            if len(self._pending) > _MAX_PENDING:
                lost = len(self._pending) - _MAX_PENDING
                del self._pending[:lost]
                with self._lock:
                    self.dropped += lost
            return
        self._good_size += len(data)
        self._pending.clear()
        self.write_failure = None

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._file.fileno(), self._good_size)
        except OSError:
            pass  # a file that cannot be shortened keeps its torn tail; readers skip a torn line anyway

