"""Control requests to a live run, and waiting for the trainer's ``control_ack``.

The request travels as a file (tui_trainer.channel.control.send_control); rank 0 picks it up at the next step
boundary, all ranks act at the same step, and the answer arrives in the event log as ``control_ack`` with the
request's id. ``stop`` through control is the same graceful stop as ``Run.stop`` without the SIGKILL fallback.
"""

from __future__ import annotations

import os
import time

from tui_trainer.channel.control import ACTIONS, send_control
from tui_trainer.channel.follower import EventFollower
from tui_trainer.runs.errors import ControlTimeout, RunError, RunNotRunning
from tui_trainer.runs.status import RUNNING, derive_status


def send(run, action: str, **payload) -> str:
    """Drop a control request into a running run; returns its id. RunNotRunning if it is not running."""
    if action not in ACTIONS:
        raise RunError(f"unknown control action '{action}' — use one of {', '.join(ACTIONS)}")
    status = derive_status(run.dir)
    if status.state != RUNNING:
        raise RunNotRunning(f"run {run.id} is not running ({status.label}) — control requests need a live trainer")
    return send_control(run.dir, action, **payload)


def end_of_log(path) -> int:
    """Offset just after the last complete line, so a follower from here sees only later events."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 65536))
            block = f.read()
    except OSError:
        return 0
    cut = block.rfind(b"\n")
    return size - len(block) + cut + 1 if cut >= 0 else max(0, size - len(block))


def request(run, action: str, *, timeout: float = 60.0, interval: float = 0.1, **payload) -> dict:
    """Send a request and wait for its control_ack event (returned). Raises ControlTimeout, or RunNotRunning
    if the run ends or its processes disappear before answering."""
    follower = EventFollower(run.events_file, end_of_log(run.events_file))
    request_id = send(run, action, **payload)
    deadline = time.monotonic() + timeout
    next_liveness = time.monotonic() + 1.0
    while True:
        for event in follower.poll():
            if event["type"] == "control_ack" and event.get("id") == request_id:
                return event
            if event["type"] == "run_end" and action != "stop":
                raise RunNotRunning(f"run {run.id} ended ({event.get('status')}) before acknowledging '{action}'")
        now = time.monotonic()
        if now >= deadline:
            raise ControlTimeout(f"run {run.id} did not acknowledge '{action}' within {timeout:.0f} s — the "
                                 "trainer acts at step boundaries, so a long step or evaluation delays it; the "
                                 f"request stays queued in {run.dir / 'control'}")
        if now >= next_liveness:
            next_liveness = now + 1.0
            status = derive_status(run.dir)
            if status.state != RUNNING:
                raise RunNotRunning(f"run {run.id} is no longer running ({status.label}): {status.reason}")
        time.sleep(interval)
