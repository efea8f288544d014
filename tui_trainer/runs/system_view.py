"""A run's newest ``system`` event, read from the end of its log, and the lines that describe it.

Used by ``gpt-console status`` (and available to the console). Stdlib only; every field may be null (a CPU run
has no GPU figures, NVML may be absent), and a missing figure prints as "-".
"""

from __future__ import annotations

import os
from pathlib import Path

from tui_trainer.runs.status import segment_tail

SEARCH_BYTES = 2 * 1024 * 1024  # a system event every few seconds: it is in the last couple of MB of any log


def last_system_event(events_file: str | os.PathLike, start: int = 0) -> dict | None:
    """The newest valid ``system`` event of the log at or after byte ``start``, or None."""
    from tui_trainer.channel.schema import event_problem
    for event in reversed(segment_tail(Path(events_file), start, SEARCH_BYTES)):
        if event.get("type") == "system" and event_problem(event) is None:
            return event
    return None


def fmt_bytes(n: float | int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def rank_line(r: dict) -> str:
    """One rank: CPU and RSS always; the GPU's figures when it has any."""
    text = f"rank {r.get('rank')}: CPU {_pct(r.get('cpu_percent'))}, RSS {fmt_bytes(r.get('rss_bytes'))}"
    if r.get("gpu_index") is not None or r.get("gpu_mem_total_bytes") is not None:
        power, temp = r.get("gpu_power_watts"), r.get("gpu_temperature_c")
        text += (f" | GPU {r.get('gpu_index') if r.get('gpu_index') is not None else '?'}: "
                 f"util {_pct(r.get('gpu_util_percent'))}, mem {fmt_bytes(r.get('gpu_mem_used_bytes'))}"
                 f" / {fmt_bytes(r.get('gpu_mem_total_bytes'))}, "
                 f"{'-' if power is None else f'{power:.0f} W'}, {'-' if temp is None else f'{temp:.0f} °C'}")
    if r.get("torch_max_memory_allocated_bytes") is not None:
        text += f", torch peak {fmt_bytes(r['torch_max_memory_allocated_bytes'])}"
    return text


def system_lines(event: dict, now: float | None = None) -> list[str]:
    """What ``gpt-console status`` prints: when the figures were taken, each machine's memory, each rank."""
    import time
    now = time.time() if now is None else now
    ranks = [r for r in event.get("ranks") or [] if isinstance(r, dict)]
    age = max(0.0, now - float(event.get("t", now)))
    lines = [f"system   at step {event.get('step')}, {age:.0f} s ago ({len(ranks)} rank(s))"]
    seen_nodes = set()
    for r in ranks:
        node = r.get("node", 0)
        if node in seen_nodes:
            continue
        seen_nodes.add(node)
        available, total = r.get("host_mem_available_bytes"), r.get("host_mem_total_bytes")
        lines.append(f"  node {node}: host memory {fmt_bytes(available)} available of {fmt_bytes(total)}")
    lines += [f"  {rank_line(r)}" for r in ranks]
    return lines
