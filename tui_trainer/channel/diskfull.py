"""A full disk, told apart from every other failure: the trainer's checkpoint writes, its event log, the
status reader and the CLI all name it the same way — what could not be written, how much room is left and
what to do. Stdlib only.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
MB = 1024 * 1024
# Below this much free space on the run's filesystem, a run that ended without a word is put down to the disk.
NEARLY_FULL_BYTES = 1 * MB
FIX = ("free some space (delete old runs with `gpt-console delete RUN`, lower checkpoint.keep_last, or move "
       "the runs root to a bigger disk), then resume the run")


class DiskFull(RuntimeError):
    """Writing ``path`` ran out of space (or quota). A user error: one paragraph, never a traceback."""

    def __init__(self, path: str | os.PathLike, needed_bytes: int | None = None, what: str = "checkpoint"):
        self.path = Path(path)
        self.free_bytes = free_bytes(self.path)
        self.needed_bytes = needed_bytes
        need = f", {what} needs ~{_mb(needed_bytes)} MB" if needed_bytes else ""
        super().__init__(f"disk full: {self.path}, {_mb(self.free_bytes)} MB free{need} — {FIX}.")


def is_disk_full(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno in NO_SPACE


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes for an unprivileged writer on the filesystem holding ``path`` (its nearest existing
    ancestor), or None when it cannot be told."""
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def nearly_full(path: str | os.PathLike) -> bool:
    free = free_bytes(path)
    return free is not None and free < NEARLY_FULL_BYTES


def describe(error: OSError, fallback_path: str | os.PathLike = ".") -> str:
    """One paragraph for an ENOSPC/EDQUOT ``error``: the file it hit, the space left and the fix."""
    where = Path(error.filename) if error.filename else Path(fallback_path)
    return f"disk full: could not write {where} ({_mb(free_bytes(where))} MB free) — {FIX}."


def _mb(value: int | None) -> str:
    if value is None:
        return "?"
    return f"{value / MB:.0f}" if value >= 10 * MB else f"{value / MB:.1f}"


def full_disk_reason(run_dir: str | os.PathLike) -> str | None:
    """Why a run that ended without a word most likely ended, when its filesystem has (almost) no room left:
    told apart from an OOM kill, which leaves the same silence. None while there is room."""
    free = free_bytes(run_dir)
    if free is None or free >= NEARLY_FULL_BYTES:
        return None
    return (f"disk full: the disk holding {run_dir} has {_mb(free)} MB free, so the trainer could not write "
            f"its checkpoint or event log — {FIX}")
