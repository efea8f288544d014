"""Draw a chart of Series into an ANSI string with plotext. No Textual here, so it is benchmarked and tested alone.

Every line is thinned to the plot's width before plotext sees it (plotext's cost grows with points), EMA
smoothing draws the raw line faint underneath, log-y hides non-positive values, and the x axis is step, tokens
or training wall time, with resume points marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tui_trainer.app.series import Series, positive_only, thin

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
    ylim: tuple[float, float] | None = None


@dataclass(frozen=True)
class ChartOptions:
    ema: bool = True
    log_y: bool = False
    x_axis: str = "step"


@dataclass(frozen=True)
class Colors:
    background: RGB = (30, 30, 30)
    foreground: RGB = (220, 220, 220)


def blend(color: RGB, background: RGB, amount: float) -> RGB:
    """``amount`` of ``color`` over ``background`` (how the raw line goes faint under its EMA)."""
    return tuple(int(round(c * amount + b * (1 - amount))) for c, b in zip(color, background))  # type: ignore


_AXIS_LABEL = {"step": "step", "tokens": "tokens", "wall": "wall"}


def _x_scale(axis: str, x_max: float) -> tuple[float, str]:
    """Divide big x values into readable units (plotext prints raw floats on its ticks)."""
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


def has_data(spec: ChartSpec) -> bool:
    return any(len(line.series) for line in spec.lines)


def render_chart(spec: ChartSpec, options: ChartOptions, width: int, height: int,
                 colors: Colors = Colors(), plot=None) -> str:
    """The chart as ANSI text of ``width`` × ``height`` cells. ``plot`` is a reusable textual_plotext Plot."""
    if plot is None:
        from textual_plotext.plot import Plot
        plot = Plot()
    plot.clear_figure()
    plot.clear_data()
    width, height = max(10, width), max(5, height)
    plot.plotsize(width, height)
    plot._set_size(width, height)  # textual-plotext does both; plotext ignores plotsize alone on re-use
    plot.canvas_color(colors.background)
    plot.axes_color(colors.background)
    plot.ticks_color(colors.foreground)

    buckets = max(8, width - 10)  # the y tick labels take ~10 columns
    x_max = 0.0
    for line in spec.lines:
        x = line.series.x(options.x_axis)
        if len(x):
            finite = x[np.isfinite(x)]
            if len(finite):
                x_max = max(x_max, float(finite[-1]))
    div, x_label = _x_scale(options.x_axis, x_max)

    y_lo, y_hi = math.inf, -math.inf
    for line in spec.lines:
        series = line.series
        if not len(series):
            continue
        x = series.x(options.x_axis) / div
        if options.ema and not line.sparse and len(series) > 2:
            # The raw line stays visible but faint, so smoothing never hides a spike.
            layers = [(series.values(), blend(line.color, colors.background, 0.35), None),
                      (series.ema(), line.color, f"{line.label} (EMA)")]
        else:
            layers = [(series.values(), line.color, line.label)]
        for values, color, label in layers:
            y = positive_only(values) if options.log_y else values
            thinned = thin(x, y, buckets)
            labelled = False
            for xs, ys in thinned.segments():
                y_lo, y_hi = min(y_lo, min(ys)), max(y_hi, max(ys))
                plot.plot(xs, ys, marker="braille", color=color, label=None if labelled else label)
                labelled = labelled or label is not None
                if line.sparse and len(xs) <= 64:
                    plot.scatter(xs, ys, marker="●", color=color)

    for value, label, color in spec.hlines:
        if not options.log_y or value > 0:
            plot.hline(value, color=color)
            y_lo, y_hi = min(y_lo, value), max(y_hi, value)
    if options.x_axis == "step":
        for step in spec.resume_steps:
            plot.vline(step, color=blend(colors.foreground, colors.background, 0.4))

    # plotext mis-builds the legend when ylim and a log scale meet (IndexError), so log-y lets it autoscale.
    if spec.ylim is not None and not options.log_y:
        lo, hi = spec.ylim
        plot.ylim(min(lo, y_lo) if math.isfinite(y_lo) else lo, max(hi, y_hi) if math.isfinite(y_hi) else hi)
    elif math.isfinite(y_lo) and y_lo == y_hi and not options.log_y:
        pad = abs(y_lo) * 0.05 or 0.5
        plot.ylim(y_lo - pad, y_hi + pad)
    if options.log_y:
        plot.yscale("log")
    smoothed = options.ema and any(not line.sparse for line in spec.lines)
    title = spec.title + (" · log" if options.log_y else "") + (" · EMA" if smoothed else "")
    nonfinite = sum(line.series.nonfinite for line in spec.lines)
    if nonfinite:
        title += f" · {nonfinite} NaN/inf"
    room = width - 14  # plotext silently drops a title wider than its canvas (width less the y tick labels)
    if len(title) > room:
        title = title[: max(1, room - 1)] + "…"
    plot.title(title)
    plot.xlabel(x_label)
    return plot.build()
