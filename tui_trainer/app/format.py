"""Short human-readable figures for narrow terminal cells."""

from __future__ import annotations

import math
import os
from pathlib import Path


def count(n: float | None, digits: int = 1) -> str:
    """124439808 -> '124.4M'; None -> '—'."""
    if n is None or not _finite(n):
        return "—"
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.{digits}f}{unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.{digits}f}"


def nbytes(n: float | None) -> str:
    if n is None or not _finite(n):
        return "—"
    for div, unit in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def duration(seconds: float | None) -> str:
    """3725 -> '1h02m'; 75 -> '1m15s'; None -> '—'."""
    if seconds is None or not _finite(seconds) or seconds < 0:
        return "—"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def number(x: float | None, digits: int = 4) -> str:
    """Loss-like values: 3.2817; tiny ones in scientific notation (learning rates)."""
    if x is None:
        return "—"
    if not _finite(x):
        return str(x)
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def percent(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or not _finite(x) else f"{100 * x:.{digits}f}%"


def _finite(x: float) -> bool:
    try:
        return math.isfinite(x)
    except TypeError:
        return False


def path(p: str | os.PathLike) -> str:
    """A path as short as it can be read: relative to the working directory when inside it, ~ for home."""
    p = Path(p)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        pass
    home = str(Path.home())
    text = str(p)
    return "~" + text[len(home):] if home != "/" and text.startswith(home + os.sep) else text


# What each control action did when the trainer answers "ok" (its own message is then a bare "done").
_ACK_DONE = {
    "sample": "Sample taken at step {step}",
    "checkpoint": "Checkpoint written at step {step}",
    "eval": "Evaluation done at step {step}",
    "stop": "Stopping at step {step}: final checkpoint written",
}
_ACK_BARE = ("", "done", "stopped", "ok")


def ack_sentence(ack: dict) -> str:
    """A control_ack event as a sentence: 'Checkpoint written at step 242', or why the trainer refused."""
    action, step = str(ack.get("action", "request")), ack.get("step")
    message = str(ack.get("message") or "").strip()
    if ack.get("ok"):
        sentence = _ACK_DONE.get(action, action + " done at step {step}").format(step=step)
        return sentence if message.lower() in _ACK_BARE else f"{sentence}: {message}"
    return f"{action.capitalize()} refused at step {step}" + (f": {message}" if message else "")
