"""Run ids: ``YYYYmmdd-HHMMSS-<name>``, readable and sorting by start time (local time)."""

from __future__ import annotations

import re
import time

_ID_RE = re.compile(r"^(\d{8})-(\d{6})-(.+)$")


def slug(name: str) -> str:
    """A config name made safe for a directory name: lowercase letters, digits, '.', '_' and '-'."""
    text = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-.")
    return text[:40] or "run"


def run_id(name: str, now: float | None = None) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now)) + "-" + slug(name)


def candidates(name: str, now: float | None = None):
    """The id, then ``-2``, ``-3``... for runs started within the same second under the same name."""
    base = run_id(name, now)
    yield base
    n = 2
    while True:
        yield f"{base}-{n}"
        n += 1


def id_time(run_id_text: str) -> float | None:
    """The start time encoded in an id (local time), or None for directories not named by us."""
    m = _ID_RE.match(run_id_text)
    if not m:
        return None
    try:
        return time.mktime(time.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S"))
    except ValueError:
        return None
