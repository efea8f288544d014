"""Where an export writes: a directory that is new or empty, filled under a temporary name and moved into
place, so an existing directory's files are never overwritten and a failed export leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class ExportError(RuntimeError):
    """A problem the user can fix (printed as one message, exit 1)."""


def check_output_dir(out: str | os.PathLike, what: str) -> Path:
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; give {what} a new directory name")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"{out} already exists and is not empty; give {what} a new (or empty) directory — "
                          "exports never overwrite files")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} does not exist; create it first or choose another place for {what}")
    return out


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield a fresh temp directory beside ``out``; on success its files become ``out``'s. A new ``out`` is
    the temp directory renamed; an existing empty one is kept (its owner and mode stay) and receives the
    files."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))  # never an existing name
    try:
        yield tmp
        if out.is_dir():
            for item in sorted(tmp.iterdir()):
                os.replace(item, out / item.name)
            tmp.rmdir()
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
