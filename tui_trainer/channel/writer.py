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

from .schema import SCHEMA_VERSION

_TAIL_BYTES = 64 * 1024
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
        except (ValueError, AttributeError):
            continue
        if isinstance(seq, int):
            return seq, torn
    return None, torn


class EventWriter:
    def __init__(self, path: str | os.PathLike, *, enabled: bool = True, max_queue: int = 10_000):
        self.path = Path(path)
        self.enabled = enabled
        self.dropped = 0           # events lost to a full queue, total
        self.write_errors = 0
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
        self._file = self.path.open("a", encoding="utf-8")
        if torn:
            self._file.write("\n")
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
        if not batch:  # close() with nothing queued: writing "\n" would leave a blank line in the log
            return
        lines = []
        for event in batch:
            record = {"v": SCHEMA_VERSION, "seq": self._next_seq, **event}
            self._next_seq += 1
            # NaN/inf (a diverged loss) are written as Python's json reads them back: NaN, Infinity.
            lines.append(json.dumps(record, ensure_ascii=False, default=str))
        try:
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()
        except OSError as e:  # a full disk must not kill training; say so once on stderr
            self.write_errors += 1
            if self.write_errors == 1:
                print(f"gpt-console: cannot write events to {self.path}: {e}", file=sys.stderr)

