"""One live launch per run directory: an exclusive ``flock`` on ``<run_dir>/launch.lock``.

Whoever launches or resumes a run takes the lock before looking at the run's state and hands the locked file
to the supervisor it starts (an inherited descriptor shares the lock), which holds it until the run's processes
are gone and lets go just before it writes the final status (so a final status means the lock is free). A second
launch, resume or delete meanwhile is refused at once instead of racing the first.
The kernel drops the lock when its last holder exits, however it exits, so a crash never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tui_trainer.channel import layout
from tui_trainer.runs.errors import RunIsRunning, RunNotFound

LOCK_FD_ENV = "GPT_CONSOLE_LAUNCH_LOCK_FD"  # tells the supervisor which inherited descriptor holds the lock


def acquire(run_dir: str | os.PathLike, run_id: str, doing: str) -> int:
    """The descriptor of the run's lock file, locked; RunIsRunning if another process holds it."""
    path = Path(run_dir) / layout.LAUNCH_LOCK
    try:
        # No O_CREAT of the directory itself: a run dir that vanished stays gone.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:
        raise RunNotFound(f"run {run_id} no longer exists ({Path(run_dir)} is gone)") from None
    except OSError as e:
        raise RunIsRunning(f"cannot {doing} run {run_id}: its lock file {path} cannot be opened "
                           f"({e.strerror}) — check the run directory's permissions") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunIsRunning(f"cannot {doing} run {run_id}: another gpt-console process is launching or "
                           f"supervising it right now — wait for it, or see `gpt-console status {run_id}`"
                           ) from None
    return fd


@contextmanager
def launch_lock(run_dir: str | os.PathLike, run_id: str, doing: str) -> Iterator[int]:
    fd = acquire(run_dir, run_id, doing)
    try:
        yield fd
    finally:
        os.close(fd)


def is_locked(run_dir: str | os.PathLike) -> bool:
    """Whether some process holds the run's launch lock now (a probe: takes and drops it if free)."""
    try:
        fd = os.open(Path(run_dir) / layout.LAUNCH_LOCK, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
