"""Checkpoint directories on disk, without torch: names, completeness, listing, newest, pruning.

The console and launcher use this to show and find checkpoints without importing torch; lib/checkpoint.py
writes and reads their contents.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

CHECKPOINT_FILE = "checkpoint.pt"
META_FILE = "meta.json"
CONFIG_FILE = "config.toml"
STEP_DIR = re.compile(r"step-(\d{8,})")
TMP_PREFIX = ".tmp-"


def checkpoint_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def prune_checkpoints(root: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints, stale temp dirs of dead writers, and
    incomplete ``step-*`` dirs: nothing writes those in place (a checkpoint appears by renaming a complete temp
    dir), so they are what an earlier prune left when it was killed halfway through a delete."""
    root = Path(root)
    removed = []
    for stale in root.glob(f"{TMP_PREFIX}step-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    half_deleted = [e for e in root.iterdir()
                    if STEP_DIR.fullmatch(e.name) and e.is_dir() and not is_complete(e)]
    for old in half_deleted + list_checkpoints(root)[:-keep_last]:
        _delete_checkpoint_dir(old)
        removed.append(old)
    return removed


def _delete_checkpoint_dir(path: Path) -> None:
    """Rename first, then delete: a kill mid-delete leaves a temp dir of a dead pid (removed by the next prune),
    never a ``step-*`` that looks like a checkpoint."""
    doomed = path.with_name(f"{TMP_PREFIX}{path.name}-deleting-{os.getpid()}")
    try:
        os.rename(path, doomed)
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_complete(path: Path) -> bool:
    return (path / META_FILE).is_file() and (path / CHECKPOINT_FILE).is_file()


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories under ``root``, oldest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = STEP_DIR.fullmatch(entry.name)
        if match and entry.is_dir() and is_complete(entry):
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def find_latest_checkpoint(root: str | os.PathLike) -> Path | None:
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None
