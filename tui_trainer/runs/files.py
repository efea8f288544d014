"""Private files: run directories are 0700 and their files 0600, and every rewrite is atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: str | os.PathLike, *, exist_ok: bool = True) -> Path:
    """Create ``path`` (and missing parents) as 0700; raises FileExistsError if it exists and not exist_ok."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not exist_ok:
            raise
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def write_private(path: str | os.PathLike, data: str | bytes) -> None:
    """Write a 0600 file atomically: a hidden temp file beside it, fsynced, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``, or None if it is missing or not a readable JSON object."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):  # RecursionError: a hostile file nested thousands deep
        return None
    return data if isinstance(data, dict) else None


def open_private_append(path: str | os.PathLike):
    """Open (creating 0600) for appending in binary mode — the trainer log continues across resumes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    return os.fdopen(fd, "ab")


def tail_lines(path: str | os.PathLike, lines: int = 40, *, max_bytes: int = 256 * 1024) -> list[str]:
    """The last ``lines`` lines of a text file (reads at most ``max_bytes`` from its end); [] if missing."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            raw = f.read()
    except OSError:
        return []
    if size > max_bytes:
        raw = raw.split(b"\n", 1)[-1]  # drop the partial first line
    text = raw.decode("utf-8", errors="replace").replace("\r", "\n")
    return [line for line in text.split("\n") if line.strip()][-lines:] if lines > 0 else []
