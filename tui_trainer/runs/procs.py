"""Process facts from /proc, so a pid is only trusted together with its kernel start time.

A pid alone can be reused by an unrelated process after the original exits; ``(pid, start_ticks, boot_id)``
cannot: the start time (field 22 of /proc/<pid>/stat, clock ticks since boot) differs for the new process,
and a reboot changes the boot id. On systems without /proc (macOS) liveness falls back to ``kill(pid, 0)``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str        # R, S, D, Z (zombie), X (dead), T ...
    ppid: int
    pgid: int
    sid: int
    start_ticks: int  # clock ticks after boot


def has_proc() -> bool:
    return (PROC / "self" / "stat").exists()


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat; None if the process does not exist (or /proc is unavailable)."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2:].split()
    try:
        return ProcStat(pid, rest[0], int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]))
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return None


def stamp(pid: int) -> dict | None:
    """The identity of a live process, as stored in launch.json: {pid, start_ticks, boot_id}."""
    st = read_stat(pid)
    if st is None:
        if has_proc():
            return None
        return {"pid": pid, "start_ticks": None, "boot_id": None}
    return {"pid": pid, "start_ticks": st.start_ticks, "boot_id": boot_id()}


def is_alive(entry: dict | None) -> bool:
    """True if the process named by a stamp still runs (not a zombie, same start time, same boot)."""
    if not entry or not isinstance(entry.get("pid"), int):
        return False
    pid = entry["pid"]
    if not has_proc():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if entry.get("boot_id") and entry["boot_id"] != boot_id():
        return False
    st = read_stat(pid)
    if st is None or st.state in ("Z", "X", "x"):
        return False
    return entry.get("start_ticks") is None or st.start_ticks == entry["start_ticks"]


def all_stats() -> list[ProcStat]:
    out = []
    try:
        names = os.listdir(PROC)
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                out.append(st)
    return out


def children(pid: int, stats: list[ProcStat] | None = None) -> list[int]:
    """Direct children of ``pid`` (torchrun's children are the rank processes)."""
    return sorted(st.pid for st in (stats if stats is not None else all_stats()) if st.ppid == pid)


def descendants(pid: int, stats: list[ProcStat] | None = None) -> list[int]:
    stats = stats if stats is not None else all_stats()
    by_parent: dict[int, list[int]] = {}
    for st in stats:
        by_parent.setdefault(st.ppid, []).append(st.pid)
    out, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def group_members(pgid: int, stats: list[ProcStat] | None = None) -> list[int]:
    return sorted(st.pid for st in (stats if stats is not None else all_stats())
                  if st.pgid == pgid and st.state not in ("Z", "X"))


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def signal_process(entry: dict | None, sig: int) -> bool:
    """Send ``sig`` to the process a stamp names, only if it is still that process. True if sent."""
    if not is_alive(entry):
        return False
    try:
        os.kill(entry["pid"], sig)  # type: ignore[index]
    except ProcessLookupError:
        return False
    return True


def kill_group(entry: dict | None, sig: int = signal.SIGKILL) -> bool:
    """Signal the whole process group led by the process a stamp names (rank processes lead their own)."""
    if not is_alive(entry):
        return False
    pid = entry["pid"]  # type: ignore[index]
    st = read_stat(pid)
    try:
        if st is not None and st.pgid == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True
