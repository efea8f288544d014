"""A run's display name and one-line note, chosen by the user, kept in ``label.json`` in the run's directory.

The run id never changes (it names the directory and what the CLI accepts); the name is only what the runs
table shows. Both are checked on the way in and again on the way out: the file may have been edited by hand.
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tui_trainer.runs.files import write_json

LABEL_FILE = "label.json"
NAME_MAX = 40
NOTE_MAX = 200
_READ_LIMIT = 16 << 10  # a label is a few hundred bytes; anything larger is not ours


@dataclass(frozen=True)
class RunLabel:
    name: str = ""
    note: str = ""


def label_problems(name: str, note: str) -> list[str]:
    """What is wrong with a name and note the user typed (empty list: fine). Empty means 'none'."""
    problems = []
    for what, text, limit in (("name", name, NAME_MAX), ("note", note, NOTE_MAX)):
        if len(text) > limit:
            problems.append(f"The {what} is {len(text)} characters long; keep it to {limit}.")
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
            problems.append(f"The {what} must be one line of visible text (no tabs, newlines or control "
                            "characters).")
    return problems


def clean(text: str) -> str:
    """Surrounding blanks off, inner runs of spaces kept as typed."""
    return text.strip()


def read_label(run_dir: str | os.PathLike) -> RunLabel:
    """The run's label; an empty one if there is none or the file is not a valid label."""
    path = Path(run_dir) / LABEL_FILE
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return RunLabel()
    try:
        with os.fdopen(fd, "rb") as f:
            raw = f.read(_READ_LIMIT + 1)
    except OSError:
        return RunLabel()
    if len(raw) > _READ_LIMIT:
        return RunLabel()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # a hostile file: e.g. "[" * 200000
        return RunLabel()
    if not isinstance(data, dict):
        return RunLabel()
    name, note = data.get("name", ""), data.get("note", "")
    if not isinstance(name, str) or not isinstance(note, str) or label_problems(name, note):
        return RunLabel()
    return RunLabel(name, note)


def write_label(run_dir: str | os.PathLike, name: str, note: str) -> RunLabel:
    """Validate and store; ValueError with the problems (one sentence each) if the text is not acceptable."""
    name, note = clean(name), clean(note)
    problems = label_problems(name, note)
    if problems:
        raise ValueError(" ".join(problems))
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"The run directory {run_dir} is gone.")
    write_json(run_dir / LABEL_FILE, {"name": name, "note": note})
    return RunLabel(name, note)
