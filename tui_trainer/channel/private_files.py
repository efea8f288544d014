"""Run files are their owner's alone: directories 0700, files 0600, whatever the umask of whoever started the
trainer (a bare ``python -m ...train`` or torchrun on a shared box gets 0755/0644 from a usual umask).

Modes are given where each file is created and then set with chmod, so an existing file or directory that was
opened up (or made by an older version) is tightened too. Only paths the caller owns are touched. Stdlib only.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and missing parents) owner-only; an existing ``path`` is tightened to 0700."""
    path = Path(path)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def open_private(path: str | os.PathLike, mode: str = "wb", **kwargs):
    """``open`` that creates the file 0600 (and tightens an existing one to 0600)."""
    f = open(path, mode, opener=_private_opener, **kwargs)
    try:
        st = os.fstat(f.fileno())
        if st.st_uid == os.getuid() and st.st_mode & 0o777 != FILE_MODE:
            os.fchmod(f.fileno(), FILE_MODE)
    except OSError:
        pass  # not ours to change (e.g. a file on a filesystem without modes): still usable
    return f


def write_private_text(path: str | os.PathLike, text: str) -> None:
    with open_private(path, "w", encoding="utf-8") as f:
        f.write(text)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    try:
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError:
        pass  # not ours to change (e.g. a filesystem without modes): still usable, as in open_private
