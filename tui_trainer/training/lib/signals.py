"""Graceful stop on SIGTERM/SIGINT, and no orphans when torchrun is killed.

The handlers only set a flag: the training loop finishes its step, all ranks agree through the per-step
all-reduce, then it checkpoints and exits 0. Repeated signals are harmless (a Ctrl-C in a terminal reaches a
worker twice: once from the tty, once forwarded by torchrun).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class StopFlag:
    """Set by a signal handler (or the trainer itself); the first reason given is kept."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self.requested:
            self.reason = reason
        self.requested = True

    def is_set(self) -> bool:  # for the evaluations, which look every few batches
        return self.requested


def install_stop_handlers(flag: StopFlag, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        flag.set(f"signal {signal.Signals(signum).name}")

    for signum in signals:
        signal.signal(signum, handler)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent (torchrun's agent) dies, so a SIGKILLed
    torchrun leaves no workers behind. Returns False where unsupported. If the parent already died before the
    call, exit now rather than train as an orphan."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died between getppid() and prctl()
        os.kill(os.getpid(), sig)
    return True
