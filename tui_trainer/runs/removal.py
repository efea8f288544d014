"""What a run reference may name, and deleting a run without touching anything else.

A run reference is one path component: a run's id (or a unique part of one). ``.``, ``..``, anything with a
``/``, an absolute path, an empty string or a NUL is refused before any file is looked at, and a symlink in
the runs root is never a run (it could point anywhere). A delete removes one run directory of the root, only
when nothing runs in it, and only when it holds nothing but what gpt-console puts there (layout.RUN_ENTRIES).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tui_trainer.channel import layout
from tui_trainer.runs.errors import RunError, RunIsRunning, RunNotFound
from tui_trainer.runs.launch_lock import launch_lock
from tui_trainer.runs.status import QUEUED, RUNNING, derive_status

_ENTRY_PATTERNS = [re.compile(p) for p in layout.RUN_ENTRY_PATTERNS]
TOMBSTONE_PREFIX = ".deleting-"


def check_run_ref(ref: object) -> str:
    """``ref`` stripped of blanks and a trailing '/', or RunNotFound saying why it cannot name a run."""
    if not isinstance(ref, str):
        raise RunNotFound("no run id given — `gpt-console runs` lists them")
    text = ref.strip()
    if text.endswith("/") and text.strip("/"):
        text = text.rstrip("/")  # shell completion of a directory name
    shown = text if text.isprintable() else ascii(text)
    why = ""
    if not text:
        why = "it is empty"
    elif "\0" in text:
        why = "it contains a NUL byte"
    elif "/" in text or os.sep in text or (os.altsep and os.altsep in text):
        why = "it is a path, not a name"
    elif text in (".", ".."):
        why = "it names the runs root or its parent"
    elif text.startswith("."):
        why = "hidden names are never runs"
    if why:
        raise RunNotFound(f"'{shown}' is not a run id ({why}) — a run id is one name from "
                          "`gpt-console runs`, or a unique part of one")
    return text


def foreign_entries(run_dir: Path) -> list[str]:
    """Top-level entries of ``run_dir`` that gpt-console did not create."""
    names = sorted(os.listdir(run_dir))
    return [n for n in names
            if n not in layout.RUN_ENTRIES and not any(p.fullmatch(n) for p in _ENTRY_PATTERNS)]


def delete_run_dir(root: Path, run) -> None:
    """Delete ``run`` (a Run of ``root``). Raises RunError (nothing deleted) when it is not safe to."""
    check_run_ref(run.id)
    run_dir = Path(run.dir)
    if run_dir.is_symlink() or not run_dir.is_dir() or run_dir.parent.resolve() != Path(root).resolve():
        raise RunNotFound(f"{run_dir} is not a run directory of {root} — nothing was deleted")
    with launch_lock(run_dir, run.id, "delete"):
        status = derive_status(run_dir)
        if status.state in (RUNNING, QUEUED):
            raise RunIsRunning(f"run {run.id} is {status.state} — stop it first "
                               f"(`gpt-console stop {run.id}`)")
        foreign = foreign_entries(run_dir)
        if foreign:
            listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise RunError(f"run {run.id} was not deleted: {run_dir} also holds {listed}, which gpt-console "
                           "did not create — move that out of the run directory, then delete the run again")
        # Renamed first, so the run vanishes at once and a delete cut short leaves a hidden leftover in the
        # root rather than a half-deleted run; the lock, held until the rename, keeps launches out meanwhile.
        tombstone = Path(root) / f"{TOMBSTONE_PREFIX}{run.id}-{os.getpid()}"
        os.rename(run_dir, tombstone)
    try:
        shutil.rmtree(tombstone)  # never follows a symlink: one inside is removed, not what it points to
    except OSError as e:
        raise RunError(f"run {run.id} is gone from the list, but removing its files failed ({e}) — "
                       f"remove {tombstone} yourself") from None
