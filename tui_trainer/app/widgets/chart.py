"""A chart widget over live Series: redraws only when its data, options, size or theme changed.

The frame (chart_render, drawn with plotext) is exactly the widget's content size, so a chart sizes itself to
whatever the layout gives it and never paints outside it."""

from __future__ import annotations

import threading
from contextlib import nullcontext

from rich.align import Align
from rich.text import Text
from textual.color import Color
from textual.widget import Widget

from tui_trainer.app.chart_render import ChartOptions, ChartSpec, Colors, has_data, render_chart


class MetricChart(Widget):
    """Draws a ChartSpec (which references Series that a follower thread keeps appending to)."""

    DEFAULT_CSS = """
    MetricChart {
        width: 1fr;
        height: 1fr;
        min-height: 5;  /* below 16×5 a chart shows its last values as text (chart_render) */
        background: $surface;
        /* Frames are laid out cell by cell: wrapping would strip the leading spaces that position them. */
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    def __init__(self, spec: ChartSpec, *, lock: threading.RLock | None = None,
                 empty_message: str = "waiting for data...", id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.spec = spec
        self.options = ChartOptions()
        self.empty_message = empty_message
        self._lock = lock
        self._cache_key: tuple | None = None
        self._cache = None  # the last renderable, reused while nothing changed

    def set_spec(self, spec: ChartSpec, lock: threading.RLock | None = None) -> None:
        self.spec, self._lock = spec, lock if lock is not None else self._lock
        self._cache_key = None
        self.refresh()

    def set_options(self, options: ChartOptions) -> None:
        if options != self.options:
            self.options = options
            self.refresh()

    def data_key(self) -> tuple:
        spec = self.spec
        return tuple((line.label, len(line.series), line.series.version) for line in spec.lines) + (
            tuple(spec.resume_steps), spec.title, tuple(spec.alerts), tuple(spec.hlines))

    def refresh_if_changed(self) -> None:
        """Called when new events arrived; a chart whose series did not move is not redrawn."""
        if self._cache_key is None or self._cache_key[0] != self.data_key():
            self.refresh()

    def _colors(self) -> Colors:
        variables = self.app.theme_variables
        bg = Color.parse(variables.get("surface", "#1e1e1e")).rgb
        fg = Color.parse(variables.get("foreground", "#dddddd")).rgb
        return Colors(bg, fg)

    def render(self):
        with self._lock or nullcontext():
            key = (self.data_key(), self.options, self.size.width, self.size.height, self.app.theme)
            if key == self._cache_key and self._cache is not None:
                return self._cache
            if not has_data(self.spec):
                text = Text(f"{self.spec.title}\n\n{self.empty_message}", style="dim", justify="center")
                self._cache_key, self._cache = key, Align.center(text, vertical="middle")
                return self._cache
            try:
                frame = render_chart(self.spec, self.options, self.size.width, self.size.height, self._colors())
            except Exception as e:  # a drawing corner case must cost one chart, not the whole console
                text = Text(f"{self.spec.title}\n\ncannot draw this view ({type(e).__name__}: {e});\n"
                            "try another x axis or toggle log-y (l)", style="dim", justify="center")
                self._cache_key, self._cache = key, Align.center(text, vertical="middle")
                return self._cache
        self._cache_key, self._cache = key, frame
        return self._cache
