"""Draw a chart of Series as Rich Text with plotext: one header line (title, legend, reference labels), then
plotext's canvas with its axes.

No Textual here, so the same frames serve the console's widgets, ``gpt-console plot`` and the benchmarks.
plotext draws every point it is given in Python, so what reaches it is always small: each line is first
thinned to per-bucket min/max over the canvas's columns (spikes survive; a frame costs about the same at 1k or
1M points). NaN/inf are gaps (plotext skips NaN and does not join across it), log-y is computed here on the
thinned values (non-positive values become gaps), and the axes get round ticks from ``ticks.py``. A frame is
always exactly ``width`` × ``height`` cells, so a chart never paints outside its widget.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
from plotext._figure import _figure_class as PlotextFigure
from plotext._monitor import monitor_class as PlotextMonitor
from rich.style import Style
from rich.text import Text

from tui_trainer.app.series import Series, Thinned, positive_only, thin, thin_mean
from tui_trainer.app.ticks import format_log_ticks, format_ticks, linear_ticks, log_ticks

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = (
    (80, 160, 255), (255, 140, 60), (90, 210, 120), (230, 90, 200),
    (240, 220, 80), (120, 220, 230), (255, 95, 95), (170, 140, 255),
)
ALERT_COLOR: RGB = (255, 80, 80)
# Every character a chart draws is one cell wide in every terminal: ASCII, Latin-1, box drawing, braille
# and this marker (East Asian width "N"). "●" and "━" are "ambiguous": terminals and fonts that draw them
# two cells wide push the rest of the line into the next panel.
POINT_MARKER = "◉"
ALERT_MARKER = "!"
MIN_PLOT_WIDTH, MIN_PLOT_HEIGHT = 16, 5  # below this a chart shows its last values as text instead


@dataclass
class Line:
    label: str
    series: Series
    color: RGB
    sparse: bool = False  # few points (val loss, HellaSwag): drawn as points, never smoothed
    smooth: bool = True   # False for schedule-like series (learning rate): the EMA would distort them
    band: tuple[Series, Series] | None = None  # (lower, upper) per point: an interval bar under each point


@dataclass
class ChartSpec:
    title: str
    lines: list[Line] = field(default_factory=list)
    hlines: list[tuple[float, str, RGB]] = field(default_factory=list)  # reference lines (value, label, color)
    resume_steps: list[int] = field(default_factory=list)
    ylim: tuple[float, float] | None = None  # at least this range is shown (data outside widens it)
    alerts: list[tuple[float, str]] = field(default_factory=list)  # (step, what): a mark atop the plot


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


def has_data(spec: ChartSpec) -> bool:
    return any(len(line.series) for line in spec.lines)


def smoothed(line: Line, options: ChartOptions) -> bool:
    return options.ema and line.smooth and not line.sparse and len(line.series) > 2


def x_scale(axis: str, x_max: float) -> tuple[float, str]:
    """Divide big x values into readable units: (divisor, axis name)."""
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


# --------------------------------------------------------------------------------------------- layers
@dataclass
class _Layer:
    x: np.ndarray  # NaN in y marks a gap; y is log10 already on a log axis
    y: np.ndarray
    color: RGB
    kind: str      # "line", "points" or "bars" (x, y hold the bars' end points, NaN between bars)
    faint: bool = False  # drawn first, under everything (a raw line under its EMA)


def _layers(spec: ChartSpec, options: ChartOptions, colors: Colors, buckets: int) -> list[_Layer]:
    layers: list[_Layer] = []
    for line in spec.lines:
        series = line.series
        if not len(series):
            continue
        x = series.x(options.x_axis)
        keep = None if options.x_axis == "step" or np.isfinite(x).all() else np.isfinite(x)
        if keep is not None:  # points without this coordinate (no token count yet) cannot be placed
            x = x[keep]

        def column(values: np.ndarray) -> np.ndarray:
            return values if keep is None else values[keep]

        clean = series.nonfinite == 0
        if line.sparse:
            if line.band is not None and len(line.band[0]) == len(series) == len(line.band[1]):
                layers.append(_bars(x, column(line.band[0].values()), column(line.band[1].values()),
                                    blend(line.color, colors.background, 0.6), options.log_y))
            pts = _thin_for_axis(x, column(series.values()), buckets, clean, options.log_y)
            layers.append(_Layer(pts.x, pts.y, line.color, "points"))
        elif smoothed(line, options):
            # The raw line stays visible but faint, so smoothing never hides a spike: drawn as its envelope
            # (bucket minima, bucket maxima), the band of noise is outlined instead of filled, a tenth of the
            # dots for plotext to place.
            raw = _thin_for_axis(x, column(series.values()), buckets, clean, options.log_y)
            ema = _trend_for_axis(x, column(series.ema()), buckets, clean, options.log_y)
            faint = blend(line.color, colors.background, 0.35)
            layers.extend(_Layer(xs, ys, faint, "line", faint=True) for xs, ys in _envelopes(raw))
            layers.append(_Layer(ema.x, ema.y, line.color, "line"))
        else:
            raw = _thin_for_axis(x, column(series.values()), buckets, clean, options.log_y)
            layers.append(_Layer(raw.x, raw.y, line.color, "line"))
    return layers


def _bars(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: RGB, log_y: bool) -> _Layer:
    if log_y:
        lo, hi = _log10(positive_only(lo)), _log10(positive_only(hi))
    xs = np.repeat(x, 3)
    ys = np.empty(3 * len(x))
    ys[0::3], ys[1::3], ys[2::3] = lo, hi, np.nan
    xs[2::3] = np.nan
    return _Layer(xs, ys, color, "bars")


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log10(values)


def _thin_for_axis(x: np.ndarray, y: np.ndarray, buckets: int, clean: bool, log_y: bool) -> Thinned:
    """Thin, then (for log-y) take log10 of the few thinned values instead of the million raw ones.

    min/max commute with log10 for positive values; a bucket reaching zero or below (rare: a learning rate
    that starts at 0) makes the whole series take the exact path, with non-positive values as gaps."""
    thinned = thin(x, y, buckets, finite_x=True, no_inf=clean)
    if log_y:
        if np.nanmin(thinned.y, initial=np.inf) <= 0:
            thinned = thin(x, positive_only(y), buckets, finite_x=True, no_inf=clean)
        thinned = Thinned(thinned.x, _log10(thinned.y))
    return _zigzag(thinned)


def _trend_for_axis(x: np.ndarray, y: np.ndarray, buckets: int, clean: bool, log_y: bool) -> Thinned:
    """A smoothed line, one point per bucket (its mean): a trend is drawn as a line, not as a band.

    The EMA is NaN exactly where the raw value was not finite, so a ``clean`` series has a NaN-free EMA."""
    trend = thin_mean(x, y, buckets, no_nan=clean)
    return Thinned(trend.x, _log10(positive_only(trend.y))) if log_y else trend


def _is_pairs(thinned: Thinned) -> bool:
    """Whether ``thin`` reduced this series to (min, max) pairs (a short series comes back as it was)."""
    x = thinned.x
    return len(x) % 2 == 0 and len(x) > 0 and np.array_equal(x[0::2], x[1::2])


def _envelopes(thinned: Thinned) -> list[tuple[np.ndarray, np.ndarray]]:
    """The lower and upper envelope of min/max pairs (a series short enough not to be thinned: itself)."""
    if not _is_pairs(thinned):
        return [(thinned.x, thinned.y)]
    y = thinned.y.reshape(-1, 2)
    x = thinned.x[0::2]
    return [(x, np.fmin(y[:, 0], y[:, 1])), (x, np.fmax(y[:, 0], y[:, 1]))]


def _zigzag(thinned: Thinned) -> Thinned:
    """Every other bucket's (min, max) pair reversed, so the line runs max→max and min→min between buckets.

    The drawn envelope is the same, but plotext draws each connector dot by dot in Python: joining min to the
    next max would trace the whole noise band twice per column."""
    if not _is_pairs(thinned):
        return thinned
    y = thinned.y.copy()
    y[2::4], y[3::4] = thinned.y[3::4], thinned.y[2::4]
    return Thinned(thinned.x, y)


# --------------------------------------------------------------------------------------------- frame
def render_chart(spec: ChartSpec, options: ChartOptions, width: int, height: int,
                 colors: Colors = Colors()) -> Text:
    """The chart as exactly ``height`` lines of exactly ``width`` cells (never more, whatever the data)."""
    width, height = max(1, int(width)), max(1, int(height))
    header = _header(spec, options, colors)
    if width < MIN_PLOT_WIDTH or height < MIN_PLOT_HEIGHT:
        body = [_last_values(spec)]
    else:
        try:
            body = _plot(spec, options, colors, width, height - 1)
        except (OverflowError, ValueError):
            # Values too far apart for plotext's integer canvas (e.g. 1e308 beside 10): the last values as
            # text beat a console that dies on one absurd number.
            body = [Text("values out of drawable range", style="italic"), _last_values(spec)]
    return _fit([header, *body], width, height)


def _header(spec: ChartSpec, options: ChartOptions, colors: Colors) -> Text:
    """Title, then a legend entry per line and per reference line: labels live here, off the data."""
    title = spec.title + (" · log" if options.log_y else "")
    if any(smoothed(line, options) for line in spec.lines):
        title += " · EMA"
    nonfinite = sum(line.series.nonfinite for line in spec.lines)
    if nonfinite:
        title += f" · {nonfinite} NaN/inf"
    if spec.alerts:
        title += f" · {len(spec.alerts)} alert{'s' if len(spec.alerts) > 1 else ''}"
    text = Text(no_wrap=True, end="")
    text.append(title, style="bold")
    for line in spec.lines:
        if not len(line.series):
            continue
        mark = POINT_MARKER if line.sparse else "─"
        label = line.label + (" (EMA)" if smoothed(line, options) else "")
        text.append("  ")
        text.append(f"{mark} {label}", style=Style(color=_rgb(line.color)))
    for value, label, color in spec.hlines:
        if label:
            text.append("  ")
            text.append(f"╌ {label} {value:g}", style=Style(color=_rgb(color)))
    if spec.alerts:
        text.append("  ")
        text.append(f"{ALERT_MARKER} alert", style=Style(color=_rgb(ALERT_COLOR), bold=True))
    return text


def _last_values(spec: ChartSpec) -> Text:
    """What a chart too small to plot still says: each line's newest value."""
    text = Text(no_wrap=True, end="")
    for line in spec.lines:
        last = line.series.last()
        if last is not None:
            text.append(f"{line.label} {last:.4g} ", style=Style(color=_rgb(line.color)))
    return text


@dataclass
class _Axes:
    x0: float
    x1: float
    y0: float
    y1: float
    x_ticks: list[float]   # in data units (steps, tokens, seconds)
    x_labels: list[str]
    x_name: str
    y_ticks: list[float]
    y_labels: list[str]
    canvas_w: int          # columns right of the y labels and the axis


def _axes(spec: ChartSpec, options: ChartOptions, layers: list[_Layer], width: int, height: int) -> _Axes:
    """Ranges that hold every layer and reference line, and round ticks that fit the frame."""
    finite_x = [layer.x[np.isfinite(layer.x)] for layer in layers]
    x0 = min((float(x.min()) for x in finite_x if len(x)), default=0.0)
    x1 = max((float(x.max()) for x in finite_x if len(x)), default=1.0)
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    div, x_name = x_scale(options.x_axis, x1)
    y_values = [float(v) for layer in layers
                for v in (np.nanmin(layer.y, initial=np.inf), np.nanmax(layer.y, initial=-np.inf))
                if math.isfinite(v)]
    y_values += [v for v, _ in _references(spec, options)]
    if spec.ylim is not None and not options.log_y:
        y_values += list(spec.ylim)
    y0, y1 = (min(y_values), max(y_values)) if y_values else (0.0, 1.0)
    pad = (y1 - y0) * 0.05 or (abs(y0) * 0.05 or 0.5)
    y0, y1 = y0 - pad, y1 + pad

    plot_rows = height - 2  # the x axis line and its labels
    y_ticks = (log_ticks if options.log_y else linear_ticks)(y0, y1, max(2, plot_rows // 3))
    y_labels = format_log_ticks([10 ** t for t in y_ticks]) if options.log_y else format_ticks(y_ticks)
    label_w = max((len(s) for s in y_labels), default=1)
    canvas_w = width - label_w - 1
    x_ticks = linear_ticks(x0 / div, x1 / div, max(2, canvas_w // 14))
    whole_steps = options.x_axis == "step" and max((abs(t) for t in x_ticks), default=0) < 1e4
    x_labels = [f"{t:.0f}" if float(t).is_integer() else f"{t:g}" for t in x_ticks] if whole_steps else \
        format_ticks(x_ticks)  # 250k rather than 250000: more ticks fit
    # The axis name takes the right end of the labels' line: ticks whose label would reach it are left out.
    name_from = width - len(x_name) - 2
    kept = [(t * div, label) for t, label in zip(x_ticks, x_labels)
            if label_w + 1 + (t * div - x0) / (x1 - x0) * (canvas_w - 1) + (len(label) + 1) // 2 < name_from]
    return _Axes(x0, x1, y0, y1, [t for t, _ in kept], [label for _, label in kept], x_name,
                 y_ticks, y_labels, canvas_w)


def _references(spec: ChartSpec, options: ChartOptions) -> list[tuple[float, RGB]]:
    """Reference lines in axis units (log10 on a log axis, where a non-positive one cannot be drawn)."""
    return [(math.log10(v) if options.log_y else v, color) for v, _, color in spec.hlines
            if not options.log_y or v > 0]


def _plot(spec: ChartSpec, options: ChartOptions, colors: Colors, width: int, height: int) -> list[Text]:
    # The canvas is about width - 8 columns (y labels and axis): one min/max pair per column.
    layers = _layers(spec, options, colors, buckets=max(8, width - 8))
    axes = _axes(spec, options, layers, width, height)
    fig = _figure(width, height)
    fig.theme("clear")  # the widget's own background and foreground show through
    fig.ticks_color(_plotext_rgb(blend(colors.foreground, colors.background, 0.75)))
    fig.xaxes(True, False)
    fig.yaxes(True, False)
    fig.xlim(axes.x0, axes.x1)
    fig.ylim(axes.y0, axes.y1)
    fig.xticks(axes.x_ticks, axes.x_labels)
    fig.yticks(axes.y_ticks, axes.y_labels)
    for x in _at_steps(spec, spec.resume_steps, options.x_axis):
        if axes.x0 <= x <= axes.x1:
            fig.vline(x, _plotext_rgb(blend(colors.foreground, colors.background, 0.35)))
    for value, color in _references(spec, options):
        if axes.y0 <= value <= axes.y1:
            fig.hline(value, _plotext_rgb(color))
    _draw_layers(fig, layers, axes.canvas_w)
    alert_x = [x for x in _at_steps(spec, [step for step, _ in spec.alerts], options.x_axis)
               if axes.x0 <= x <= axes.x1]
    if alert_x:
        fig.scatter(alert_x, [axes.y1] * len(alert_x), marker=ALERT_MARKER, color=_plotext_rgb(ALERT_COLOR))
    lines = _figure_lines(fig)[:height]
    if len(lines) == height:  # the axis name at the right end of the tick labels' line, kept free above
        name = " " + axes.x_name
        lines[-1].truncate(max(0, width - len(name)), overflow="crop", pad=True)
        lines[-1].append(name, style=Style(color=_rgb(blend(colors.foreground, colors.background, 0.75))))
    return lines


def _at_steps(spec: ChartSpec, steps: list, axis: str) -> list[float]:
    """Where steps (resumes, alerts) fall on the x axis: on tokens or wall time, the coordinate of the first
    point at or after each step in the chart's first per-step line (none yet: left out)."""
    if axis == "step" or not steps:
        return [float(s) for s in steps]
    dense = [line.series for line in spec.lines if not line.sparse and len(line.series)]
    if not dense:
        return []
    at, xs = dense[0].x("step"), dense[0].x(axis)
    idx = np.searchsorted(at, np.asarray(steps, dtype=np.float64), side="left")
    return [float(xs[i]) for i in idx if i < len(xs) and math.isfinite(xs[i])]


def _draw_layers(fig: PlotextFigure, layers: list[_Layer], canvas_w: int) -> None:
    """plotext gives a cell to the last layer drawn in it: faint lines first, then interval bars, dense
    points, lines, and markers last: no point hides under a line and no line under a cloud of points."""
    def marker(layer: _Layer) -> str:
        # A marker per point while they stand apart; more would bury every line: braille dots then.
        few = layer.kind == "points" and np.count_nonzero(np.isfinite(layer.y)) <= canvas_w // 3
        return POINT_MARKER if few else "braille"

    def rank(layer: _Layer) -> int:
        if layer.faint:
            return 0
        if layer.kind == "points":
            return 4 if marker(layer) == POINT_MARKER else 2
        return 1 if layer.kind == "bars" else 3

    for layer in sorted(layers, key=rank):
        if not np.isfinite(layer.y).any():
            continue
        color = _plotext_rgb(layer.color)
        if layer.kind == "points":
            fig.scatter(layer.x.tolist(), layer.y.tolist(), marker=marker(layer), color=color)
        else:
            fig.plot(layer.x.tolist(), layer.y.tolist(), marker="braille", color=color)


_figures = threading.local()


def _figure(width: int, height: int) -> PlotextFigure:
    """An empty plotext figure of ``width`` × ``height``, one per thread, reused from frame to frame.

    A new figure deep-copies plotext's defaults (a tenth of a small chart's frame); a fresh monitor (what
    holds the data and settings of one plot) empties the figure for the next frame."""
    fig = getattr(_figures, "figure", None)
    if fig is None:
        fig = _figures.figure = PlotextFigure()
        fig._limit_size(False, False)  # plotext would otherwise shrink a figure to the terminal it runs in
    fig.monitor = PlotextMonitor()
    fig.monitor.set_date(fig.date)
    fig.plot_size(width, height)
    return fig


def _figure_lines(fig: PlotextFigure) -> list[Text]:
    """plotext's character matrix as Rich Text, one span per run of one colour.

    This is ``fig.build()`` without its last step: build() renders the matrix into an ANSI string, which Rich
    would then parse back (together a third of a small chart's frame)."""
    fig._set_sizes()
    fig._build_matrix()
    matrix = fig.monitor.matrix
    styles: dict = {}
    lines = []
    for markers, colors in zip(matrix.marker[::-1], matrix.fullground[::-1]):
        text = Text(no_wrap=True, end="")
        start, n = 0, len(markers)
        while start < n:
            color = colors[start]
            end = start + 1
            while end < n and colors[end] == color:
                end += 1
            style = styles.get(color)
            if style is None:
                style = styles[color] = Style(color=_rgb(color)) if isinstance(color, tuple) else Style()
            text.append("".join(markers[start:end]), style=style)
            start = end
        lines.append(text)
    return lines


def _fit(lines: list[Text], width: int, height: int) -> Text:
    """Exactly ``height`` lines of exactly ``width`` cells: cut what is longer, pad what is shorter."""
    lines = lines[:height] + [Text("") for _ in range(height - len(lines))]
    for line in lines:
        line.no_wrap, line.end = True, ""
        line.truncate(width, overflow="crop", pad=True)
    return Text("\n", no_wrap=True, end="").join(lines)


def _rgb(color: RGB) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


def _plotext_rgb(color: RGB) -> tuple[int, int, int]:
    return int(color[0]), int(color[1]), int(color[2])
