"""Tail the event log: read only new bytes, from any offset, tolerant of torn and garbage lines.

The event log (``<run_dir>/events.jsonl``, one JSON object a line, see schema.py) is the source of truth, so
everything that shows a run — the console, ``gpt-console attach``, ``gpt-console runs`` — reads it with this class.

    follower = EventFollower(run_dir / "events.jsonl")    # offset 0: replay the whole history
    while True:
        for event in follower.poll(max_events=10_000):    # bounded batches keep memory flat during replay
            ...
        if follower.ended: break
        time.sleep(0.1)

Guarantees:
- ``poll`` never re-reads bytes it has consumed; ``offset`` is the byte position just after the last complete
  line returned (save it and pass it to a new follower to continue where you were).
- A last line without its newline (the writer is mid-write, or died mid-write) is kept back, not an error: it is
  parsed once its newline arrives, and never if it does not.
- Every event is checked against the schema (schema.event_problem: types, ranges, sizes) before anyone sees
  it. A line that is not JSON, nests too deep, or breaks the schema is skipped and counted in ``skipped``,
  exactly like a torn line; blank lines are ignored. A runaway line longer than ``max_line_bytes`` is dropped
  (counted) instead of growing memory. So a reader can trust every field of every event it gets.
- Events of a type this version does not know (a newer writer) are dropped and counted in ``ignored``.
- If the file shrinks below the offset (it was replaced), the follower starts again from byte 0 and counts
  ``restarts``; the caller decides whether to clear what it built from the old content.

Stdlib only, no threads: the caller picks the polling rhythm (the console does it in a worker).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from .schema import EVENT_FIELDS, event_problem

DEFAULT_CHUNK = 1 << 20          # bytes read per system call during replay
DEFAULT_MAX_LINE = 16 << 20      # a longer "line" is garbage (no event comes close), dropped to bound memory
_scan_once = json.JSONDecoder().scan_once


class EventFollower:
    """Incremental reader of one event log. Not thread-safe; use one instance per reader."""

    def __init__(self, path: str | os.PathLike, offset: int = 0, *, chunk_size: int = DEFAULT_CHUNK,
                 max_line_bytes: int = DEFAULT_MAX_LINE):
        self.path = Path(path)
        self.offset = offset              # bytes consumed as complete lines
        self.skipped = 0                  # garbage lines skipped: torn, not JSON, or not valid for the schema
        self.ignored = 0                  # well-formed events of a type this version does not know
        self.restarts = 0                 # times the file shrank and reading started over
        self.events_read = 0              # events returned so far
        self.ended = False                # the newest lifecycle event is a run_end (a later run_start clears it)
        self.end_event: dict | None = None
        self.last_event_time: float | None = None  # the ``t`` of the newest event (writer's clock)
        self.last_growth: float | None = None      # time.time() when new bytes last arrived (reader's clock)
        self.last_seq: int | None = None
        self.seq_gaps = 0                 # places where seq did not increase by one (lost or reordered lines)
        self._chunk = chunk_size
        self._max_line = max_line_bytes
        self._buf = b""                   # bytes from ``offset`` on that were read but not yet consumed
        self._discarding = False          # inside an over-long line: drop bytes until its newline

    # ------------------------------------------------------------------------------------------ reading
    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete last line held back (0 when the log ends with a newline)."""
        return len(self._buf)

    def poll(self, max_events: int | None = None) -> list[dict]:
        """Return the events that completed since the last call (at most ``max_events``), oldest first.

        Returns [] when nothing new arrived or the file does not exist yet.
        """
        events: list[dict] = []
        limit = max_events if max_events is not None else -1
        events.extend(self._consume(limit))
        if 0 <= limit <= len(events):
            return events
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return events
        with f:
            size = os.fstat(f.fileno()).st_size
            if size < self.offset + len(self._buf):
                self._restart()
            f.seek(self.offset + len(self._buf))
            while limit < 0 or len(events) < limit:
                chunk = f.read(self._chunk)
                if not chunk:
                    break
                self.last_growth = time.time()
                self._append(chunk)
                events.extend(self._consume(limit - len(events) if limit >= 0 else -1))
        return events

    def __iter__(self) -> Iterator[dict]:
        """Every event currently in the log from the offset on, in bounded batches (no waiting)."""
        while True:
            batch = self.poll(max_events=10_000)
            if not batch:
                return
            yield from batch

    def follow(self, interval: float = 0.1, *, should_stop: Callable[[], bool] | None = None,
               max_events: int = 10_000) -> Iterator[list[dict]]:
        """Yield non-empty batches as they arrive, sleeping ``interval`` s when idle.

        Ends when ``should_stop()`` returns true (asked only while idle, so a finished log is drained first).
        Without ``should_stop`` it ends once a run_end has been read and nothing more is pending.
        """
        while True:
            batch = self.poll(max_events=max_events)
            if batch:
                yield batch
                continue
            if should_stop() if should_stop is not None else self.ended:
                return
            time.sleep(interval)

    def silent_for(self, now: float | None = None) -> float | None:
        """Seconds since the writer was last heard from (newest event time or byte arrival), None if never.

        A live trainer writes a heartbeat every ``system.heartbeat_seconds``; silence well beyond that plus a
        gone process (see tui_trainer.runs) means the writer is dead.
        """
        heard = [t for t in (self.last_event_time, self.last_growth) if t is not None]
        if not heard:
            return None
        return max(0.0, (time.time() if now is None else now) - max(heard))

    # ----------------------------------------------------------------------------------------- internals
    def _restart(self) -> None:
        self.offset = 0
        self._buf = b""
        self._discarding = False
        self.restarts += 1
        self.ended = False
        self.end_event = None
        self.last_seq = None

    def _append(self, chunk: bytes) -> None:
        if self._discarding:
            cut = chunk.find(b"\n")
            if cut < 0:
                self.offset += len(chunk)
                return
            self.offset += cut + 1
            self._discarding = False
            chunk = chunk[cut + 1:]
        self._buf += chunk
        if len(self._buf) > self._max_line and self._buf.find(b"\n") < 0:
            # One line already longer than any event can be: drop it rather than hold it in memory.
            self.offset += len(self._buf)
            self._buf = b""
            self._discarding = True
            self.skipped += 1

    def _consume(self, limit: int) -> list[dict]:
        """Decode complete lines from the buffer; ``limit`` < 0 means all of them."""
        buf = self._buf
        end = buf.rfind(b"\n")
        if end < 0 or limit == 0:
            return []
        lines = buf[:end].split(b"\n")
        if 0 <= limit < len(lines):
            lines = lines[:limit]
            used = sum(map(len, lines)) + len(lines)
        else:
            used = end + 1
        self._buf = buf[used:]
        self.offset += used
        try:  # one decode for the whole block is much cheaper than one per line
            texts = b"\n".join(lines).decode("utf-8").split("\n")
        except UnicodeDecodeError:
            texts = [self._text(line) for line in lines]
        events = []
        for text in texts:
            event = self._decode(text)
            if event is not None:
                events.append(event)
        if events:
            self._observe(events)
        return events

    def _text(self, line: bytes) -> str | None:
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            self.skipped += 1
            return None

    def _decode(self, text: str | None) -> dict | None:
        if not text or text.isspace():
            return None
        event, verdict = _parse(text)
        if verdict is _UNKNOWN:
            self.ignored += 1
        elif verdict is _GARBAGE:
            self.skipped += 1
        return event

    def _observe(self, events: list[dict]) -> None:
        self.events_read += len(events)
        for event in events:
            seq = event.get("seq")
            if isinstance(seq, int):
                if self.last_seq is not None and seq != self.last_seq + 1:
                    self.seq_gaps += 1
                self.last_seq = seq
            kind = event["type"]
            if kind == "run_end":
                self.ended, self.end_event = True, event
            elif kind == "run_start":
                self.ended, self.end_event = False, None
        t = events[-1].get("t")
        if isinstance(t, (int, float)):
            self.last_event_time = float(t)


_GARBAGE, _UNKNOWN = object(), object()


def _parse(text: str) -> tuple[dict | None, object]:
    """(the event, None) if ``text`` is one schema-valid event, else (None, _GARBAGE or _UNKNOWN)."""
    try:
        # scan_once skips json.loads' wrapper layers (~25% faster); what follows the object must be blank.
        event, end = _scan_once(text, 0)
        if end != len(text) and not text[end:].isspace():
            return None, _GARBAGE
    except StopIteration:  # leading whitespace or not JSON at all: let json.loads decide
        try:
            event = json.loads(text)
        except (ValueError, RecursionError):
            return None, _GARBAGE
    except (ValueError, RecursionError):  # a deeply nested line exhausts the C decoder's recursion guard
        return None, _GARBAGE
    if event_problem(event) is None:
        return event, None
    if type(event) is dict and isinstance(event.get("type"), str) and event["type"] not in EVENT_FIELDS:
        return None, _UNKNOWN
    return None, _GARBAGE


def parse_event_line(line: bytes | str) -> dict | None:
    """One log line as a schema-valid event, or None (blank, torn, not JSON, too deep, invalid, unknown type).

    For readers that pick lines out of a log themselves (a tail); it never raises."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not line or line.isspace():
        return None
    return _parse(line)[0]
