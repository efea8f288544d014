"""One line of machine figures under the dashboard header: GPU utilisation and memory per rank on CUDA, CPU
and RSS per rank on CPU runs, from the newest ``system`` event (docs/events.md)."""

from __future__ import annotations

import math

from rich.text import Text
from textual.widget import Widget

from tui_trainer.app.run_view import RunView

GIB = 2**30


def _num(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def rank_figures(rank: dict) -> str:
    """``r0 GPU 97% 71.2/80G`` on CUDA, ``r0 CPU 180% RSS 1.2G`` otherwise; ``r1 —`` before a first sample."""
    name = f"r{rank.get('rank', '?')}"
    util, used = _num(rank.get("gpu_util_percent")), _num(rank.get("gpu_mem_used_bytes"))
    total = _num(rank.get("gpu_mem_total_bytes"))
    if util is not None or used is not None:
        parts = [f"{name} GPU"]
        if util is not None:
            parts.append(f"{util:.0f}%")
        if used is not None:
            parts.append(f"{used / GIB:.1f}/{total / GIB:.0f}G" if total else f"{used / GIB:.1f}G")
        return " ".join(parts)
    cpu, rss = _num(rank.get("cpu_percent")), _num(rank.get("rss_bytes"))
    if cpu is None and rss is None:
        return f"{name} —"
    parts = [f"{name} CPU"]
    if cpu is not None:
        parts.append(f"{cpu:.0f}%")
    if rss is not None:
        parts.append(f"RSS {rss / GIB:.1f}G")
    return " ".join(parts)


def _summary(ranks: list[dict]) -> str:
    """Ranges over ranks, for when one entry per rank does not fit."""
    def span(key: str, scale: float = 1.0, fmt: str = "{:.0f}") -> str | None:
        values = [v / scale for v in (_num(r.get(key)) for r in ranks) if v is not None]
        if not values:
            return None
        lo, hi = min(values), max(values)
        return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"
    util, used = span("gpu_util_percent"), span("gpu_mem_used_bytes", GIB, "{:.1f}")
    if util or used:
        return f"{len(ranks)} ranks · GPU {util or '?'}% · mem {used or '?'}G"
    cpu, rss = span("cpu_percent"), span("rss_bytes", GIB, "{:.1f}")
    return f"{len(ranks)} ranks · CPU {cpu or '?'}% · RSS {rss or '?'}G"


def strip_text(system: dict | None, width: int) -> Text:
    """The strip for ``width`` cells: every rank if it fits, else ranges over the ranks; never wider."""
    if not system:
        return Text("system: no figures yet", style="dim", no_wrap=True, end="")
    ranks = [r for r in system.get("ranks") or [] if isinstance(r, dict)]
    host = ""
    free, total = _num(ranks[0].get("host_mem_available_bytes")) if ranks else None, \
        _num(ranks[0].get("host_mem_total_bytes")) if ranks else None
    if free is not None and total:
        host = f"host free {free / GIB:.1f}/{total / GIB:.0f}G"
    each = "  ".join(rank_figures(r) for r in ranks)
    line = "  ·  ".join(p for p in (each, host) if p)
    if len(line) > width:
        line = "  ·  ".join(p for p in (_summary(ranks), host) if p)
    text = Text(line, style="dim", no_wrap=True, end="")
    text.truncate(width, overflow="crop")
    return text


class SystemStrip(Widget):
    DEFAULT_CSS = """
    SystemStrip {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._system: dict | None = None

    def show(self, view: RunView) -> None:
        with view.lock:
            system = view.system
        if system is not self._system:
            self._system = system
            self.refresh()

    def render(self) -> Text:
        return strip_text(self._system, max(1, self.size.width))
