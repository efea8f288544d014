"""Draw a chart of Series as Rich Text: braille lines, axes with round ticks, legend, reference lines.

No Textual here, so it is benchmarked and tested alone. Every line is thinned to the canvas's dot columns by
per-bucket min/max before it is rasterised (spikes survive, cost is O(points) in numpy, then O(columns)).
EMA smoothing draws the raw line faint underneath; log-y hides non-positive values; the x axis is step, tokens
or training wall time; resume points are marked with a dotted vertical line.

This replaced plotext (through textual-plotext): a 1M-point frame took 30–90 ms there on this machine, nearly all
of it in plotext's per-dot Python code; here the rasteriser is a handful of array operations
(benchmarks/console_bench.py, docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rich.style import Style
from rich.text import Text

from tui_trainer.app.braille import DotCanvas
from tui_trainer.app.series import Series, Thinned, positive_only, thin
from tui_trainer.app.ticks import format_log_ticks, format_ticks, linear_ticks, log_ticks

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = (
    (80, 160, 255), (255, 140, 60), (90, 210, 120), (230, 90, 200),
    (240, 220, 80), (120, 220, 230), (255, 95, 95), (170, 140, 255),
)


@dataclass
class Line:
    label: str
    series: Series
    color: RGB
    sparse: bool = False  # few points (val loss, HellaSwag): a dot at each point, never smoothed


@dataclass
class ChartSpec:
    title: str
    lines: list[Line] = field(default_factory=list)
    hlines: list[tuple[float, str, RGB]] = field(default_factory=list)  # reference lines (value, label, color)
    resume_steps: list[int] = field(default_factory=list)
    ylim: tuple[float, float] | None = None  # at least this range is shown (data outside widens it)


@dataclass(frozen=True)
class ChartOptions:
    ema: bool = True
    log_y: bool = False
    x_axis: str = "step"


@dataclass(frozen=True)
class Colors:
    background: RGB = (30, 30, 30)
    foreground: RGB = (220, 220, 220)


MAX_MARKERS = 64  # sparse series get a ● per point up to this many points


def blend(color: RGB, background: RGB, amount: float) -> RGB:
    """``amount`` of ``color`` over ``background`` (how the raw line goes faint under its EMA)."""
    return tuple(int(round(c * amount + b * (1 - amount))) for c, b in zip(color, background))  # type: ignore


def has_data(spec: ChartSpec) -> bool:
    return any(len(line.series) for line in spec.lines)


def _x_scale(axis: str, x_max: float) -> tuple[float, str]:
    """Divide big x values into readable units."""
    if axis == "tokens":
        for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if x_max >= 10 * div:
                return div, f"tokens ({unit})"
        return 1.0, "tokens"
    if axis == "wall":
        if x_max >= 2 * 3600:
            return 3600.0, "wall (h)"
        if x_max >= 120:
            return 60.0, "wall (min)"
        return 1.0, "wall (s)"
    return 1.0, "step"


@dataclass
class _Layer:
    segments: list[tuple[np.ndarray, np.ndarray]]  # finite runs of (x, y), y already log10 for log-y
    color: RGB
    label: str | None
    markers: bool


def _layers(spec: ChartSpec, options: ChartOptions, colors: Colors, buckets: int) -> list[_Layer]:
    layers = []
    for line in spec.lines:
        series = line.series
        if not len(series):
            continue
        x = series.x(options.x_axis)
        if options.ema and not line.sparse and len(series) > 2:
            # The raw line stays visible but faint, so smoothing never hides a spike.
            wanted = [(series.values(), blend(line.color, colors.background, 0.35), None, series.nonfinite == 0),
                      (series.ema(), line.color, f"{line.label} (EMA)", True)]  # EMA is NaN, never inf
        else:
            wanted = [(series.values(), line.color, line.label, series.nonfinite == 0)]
        finite_x = options.x_axis == "step"
        if not finite_x and not np.isfinite(x).all():  # once per line, not once per layer
            keep = np.isfinite(x)
            x = x[keep]
            wanted = [(values[keep], color, label, clean) for values, color, label, clean in wanted]
        for values, color, label, clean in wanted:
            thinned = _thin_for_axis(x, values, buckets, clean, options.log_y)
            layers.append(_Layer(thinned.segment_arrays(), color, label,
                                 line.sparse and len(series) <= MAX_MARKERS))
    return layers


def _thin_for_axis(x: np.ndarray, y: np.ndarray, buckets: int, clean: bool, log_y: bool) -> Thinned:
    """Thin, then (for log-y) take log10 of the few thinned values instead of the million raw ones.

    min/max commute with log10 for positive values; a bucket reaching zero or below (rare: a learning rate
    that starts at 0) makes the whole series take the exact path, with non-positive values as gaps."""
    thinned = thin(x, y, buckets, finite_x=True, no_inf=clean)
    if not log_y:
        return thinned
    if np.nanmin(thinned.y, initial=np.inf) <= 0:
        thinned = thin(x, positive_only(y), buckets, finite_x=True, no_inf=clean)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Thinned(thinned.x, np.log10(thinned.y))


def render_chart(spec: ChartSpec, options: ChartOptions, width: int, height: int,
                 colors: Colors = Colors()) -> Text:
    """The chart as ``height`` lines of ``width`` cells."""
    width, height = max(24, width), max(6, height)
    layers = _layers(spec, options, colors, buckets=2 * width)

    # ------------------------------------------------------------------------------------------- ranges
    xs = [seg[0] for layer in layers for seg in layer.segments]
    ys = [seg[1] for layer in layers for seg in layer.segments]
    x0 = min((float(a[0]) for a in xs), default=0.0)
    x1 = max((float(a[-1]) for a in xs), default=1.0)
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    div, x_label = _x_scale(options.x_axis, x1)

    def to_y(v: float) -> float:
        return math.log10(v) if options.log_y else v

    refs = [(to_y(v), label, color) for v, label, color in spec.hlines if not options.log_y or v > 0]
    y_values = [float(a.min()) for a in ys] + [float(a.max()) for a in ys] + [r[0] for r in refs]
    if spec.ylim is not None and not options.log_y:
        y_values += list(spec.ylim)
    y0, y1 = (min(y_values), max(y_values)) if y_values else (0.0, 1.0)
    pad = (y1 - y0) * 0.05 or (abs(y0) * 0.05 or 0.5)
    y0, y1 = y0 - pad, y1 + pad

    plot_h = height - 3  # title above; axis line and tick labels below
    y_ticks = (log_ticks if options.log_y else linear_ticks)(y0, y1, max(2, plot_h // 2))
    y_labels = format_log_ticks([10 ** t for t in y_ticks]) if options.log_y else format_ticks(y_ticks)
    label_w = max((len(s) for s in y_labels), default=1)
    plot_w = max(4, width - label_w - 1)
    canvas = DotCanvas(plot_w, plot_h)

    def col(x: np.ndarray | float):
        return (np.asarray(x, dtype=np.float64) - x0) / (x1 - x0) * (canvas.dots_x - 1)

    def row(y: np.ndarray | float):
        return (y1 - np.asarray(y, dtype=np.float64)) / (y1 - y0) * (canvas.dots_y - 1)

    # ------------------------------------------------------------------------------------------ drawing
    faint = blend(colors.foreground, colors.background, 0.35)
    if options.x_axis == "step":
        for step in spec.resume_steps:
            canvas.vline(float(col(step)), faint)
    for value, _, color in refs:
        canvas.hline(float(row(value)), color, dashed=True)
    for layer in layers:
        for sx, sy in layer.segments:
            canvas.polyline(col(sx), row(sy), layer.color)
            if layer.markers:
                for px, py in zip(col(sx).tolist(), row(sy).tolist()):
                    canvas.mark(px, py, "●", layer.color)
    for value, label, color in refs:  # name the reference lines at their right end
        if label:
            canvas.text(int(row(value)) // 4, plot_w - len(label) - 1, label, color)
    legend_col = 1
    for layer in layers:
        if layer.label and legend_col + len(layer.label) + 3 <= plot_w:
            canvas.text(0, legend_col, "━ " + layer.label, layer.color)
            legend_col += len(layer.label) + 4

    # ------------------------------------------------------------------------------------------ framing
    axis_style = Style(color=_rgb(blend(colors.foreground, colors.background, 0.75)))
    styles: dict[RGB, Style] = {}
    text = Text(no_wrap=True, end="")

    smoothed = options.ema and any(not line.sparse for line in spec.lines)
    title = spec.title + (" · log" if options.log_y else "") + (" · EMA" if smoothed else "")
    nonfinite = sum(line.series.nonfinite for line in spec.lines)
    if nonfinite:
        title += f" · {nonfinite} NaN/inf"
    if len(title) > width:
        title = title[: width - 1] + "…"
    text.append(title.center(width)[:width], style="bold")
    text.append("\n")

    tick_rows = {}
    for value, label in zip(y_ticks, y_labels):
        r = int(np.rint(float(row(value)))) // 4
        if 0 <= r < plot_h:
            tick_rows.setdefault(r, label)
    chars, cell_colors = canvas.cells()
    for r in range(plot_h):
        label = tick_rows.get(r)
        text.append((label or "").rjust(label_w) + ("┤" if label is not None else "│"), style=axis_style)
        _append_cells(text, chars[r], cell_colors[r], styles)
        text.append("\n")

    x_ticks = linear_ticks(x0 / div, x1 / div, max(2, plot_w // 12))
    x_labels = format_ticks(x_ticks) if options.x_axis != "step" or div != 1 else \
        [f"{t:.0f}" if float(t).is_integer() else f"{t:g}" for t in x_ticks]
    axis = ["─"] * plot_w
    under = [" "] * (plot_w + label_w + 1)
    room = len(under) - len(x_label) - 1  # the axis name always shows, at the right end
    under[room + 1:] = list(x_label)
    taken_until = -1
    for value, label in zip(x_ticks, x_labels):
        c = int(round(float(col(value * div)) / 2))
        if 0 <= c < plot_w:
            axis[c] = "┬"
            start = max(0, label_w + 1 + c - len(label) // 2)
            if start > taken_until and start + len(label) <= room:
                under[start:start + len(label)] = list(label)
                taken_until = start + len(label)
    text.append(" " * label_w + "└" + "".join(axis), style=axis_style)
    text.append("\n")
    text.append("".join(under), style=axis_style)
    return text


def _rgb(color: RGB) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


def _append_cells(text: Text, chars: list[str], colors: list, styles: dict) -> None:
    """Append one row, one span per run of same-coloured cells."""
    start = 0
    n = len(chars)
    while start < n:
        color = colors[start]
        end = start + 1
        while end < n and colors[end] == color:
            end += 1
        if color is None:
            text.append("".join(chars[start:end]))
        else:
            style = styles.get(color)
            if style is None:
                style = styles[color] = Style(color=_rgb(color))
            text.append("".join(chars[start:end]), style=style)
        start = end
