"""What the trainer does with the control requests of one step boundary (channel/control.py carries them).

Rank 0 polls the inbox after each step; every rank then learns, through the per-step all-reduce of
``step.agree``, which flags any rank raised (``wanted_flags``), and all of them act on the agreed flags at the
same step boundary (``handle_requests``), so collectives (evaluation, checkpoint) line up. Only rank 0 holds
the requests themselves, so only it answers them (its ``events`` is the writing one).
"""

from __future__ import annotations

from typing import Callable

FLAGS = ("stop", "checkpoint", "sample", "eval", "vanished")  # what all ranks agree on after every step


def wanted_flags(requests: list[dict], *, stop: bool, vanished: bool) -> list[bool]:
    """This rank's vote for each of FLAGS: a stop (signal or request), each action asked for, a deleted run."""
    asked = {r["action"] for r in requests if "error" not in r}
    return [stop or "stop" in asked] + [flag in asked for flag in FLAGS[1:-1]] + [vanished]


def handle_requests(requests: list[dict], act: dict[str, bool], step: int, events, *,
                    evaluate: Callable[[int, bool], None], sample: Callable[[int, str, str], None],
                    checkpoint: Callable[[int, str], None], prompt: str, save_on_stop: bool) -> None:
    """Act on the agreed flags, in a fixed order (eval, samples, checkpoint, stop), and answer every request
    with a ``control_ack``. ``save_on_stop`` False: the stop writes no checkpoint (a deleted run directory,
    weights that are no longer finite)."""
    valid = [r for r in requests if "error" not in r]
    for r in (r for r in requests if "error" in r):
        events.emit("control_ack", id=r["id"], action=r["action"], step=step, ok=False, message=r["error"])
    if act["eval"]:
        evaluate(step, True)
    for r in (r for r in valid if r["action"] == "sample"):
        sample(step, r.get("prompt") or prompt, "control")
    if act["checkpoint"] and not act["stop"]:
        checkpoint(step, "control")
    for r in (r for r in valid if r["action"] != "stop"):
        events.emit("control_ack", id=r["id"], action=r["action"], step=step, ok=True, message="done")
    if act["stop"]:
        if save_on_stop:
            checkpoint(step, "stop")
        for r in (r for r in valid if r["action"] == "stop"):
            events.emit("control_ack", id=r["id"], action="stop", step=step, ok=True, message="stopped")
