"""Compare runs: a table of what differs (config keys, final and best metrics) above their train loss, val
loss, HellaSwag and learning rate overlaid, each run in its own colour, live."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from tui_trainer.app.chart_catalog import HELLASWAG_REFERENCES, HELLASWAG_YLIM
from tui_trainer.app.chart_render import PALETTE, ChartOptions, ChartSpec, Line
from tui_trainer.app.compare_table import compare_table
from tui_trainer.app.feed import RunFeed
from tui_trainer.app.messages import RunUpdated
from tui_trainer.app.run_view import RunView
from tui_trainer.app.screens.dashboard import MIN_REDRAW_SECONDS
from tui_trainer.app.series import X_AXES
from tui_trainer.app.widgets.chart import MetricChart


def compare_specs(views: list[RunView]) -> dict[str, ChartSpec]:
    def lines(series: str, sparse: bool = False, smooth: bool = True, band: bool = False) -> list[Line]:
        return [Line(v.run_id, v.series[series], PALETTE[i % len(PALETTE)], sparse=sparse, smooth=smooth,
                     band=(v.series["hellaswag_lo"], v.series["hellaswag_hi"]) if band else None)
                for i, v in enumerate(views)]

    return {
        "cmp-train": ChartSpec("train loss", lines("train_loss")),
        "cmp-val": ChartSpec("val loss", lines("val_loss", sparse=True)),
        "cmp-hellaswag": ChartSpec("HellaSwag acc_norm ± 95 %", lines("hellaswag", sparse=True, band=True),
                                   hlines=list(HELLASWAG_REFERENCES), ylim=HELLASWAG_YLIM),
        "cmp-lr": ChartSpec("learning rate", lines("lr", smooth=False)),
    }


def run_colors(count: int) -> list[str]:
    return [f"rgb({r},{g},{b})" for r, g, b in (PALETTE[i % len(PALETTE)] for i in range(count))]


class CompareScreen(Screen):
    DEFAULT_CSS = """
    CompareScreen #compare-table {
        height: auto;
        max-height: 40%;
        overflow-y: auto;  /* two presets can differ in dozens of keys: scroll, charts keep their room */
        padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("m", "toggle_ema", "EMA"),
        Binding("l", "toggle_log", "Log-y"),
        Binding("x", "cycle_x", "X axis"),
        Binding("escape", "back", "Runs"),
    ]

    def __init__(self, runs: list) -> None:
        super().__init__()
        self.runs = runs
        # One lock for all the views: a chart that overlays several runs reads them all under it.
        self.lock = threading.RLock()
        self.views = [RunView(run_id=run.id, lock=self.lock) for run in runs]
        self.options = ChartOptions()
        self._specs = compare_specs(self.views)
        self._last_draw = 0.0
        self._redraw_timer = None

    def compose(self) -> ComposeResult:
        legend = Text("Compare  ", style="bold")
        for i, run in enumerate(self.runs):
            r, g, b = PALETTE[i % len(PALETTE)]
            legend.append(f"─ {run.id}  ", style=f"rgb({r},{g},{b})")
        yield Static(legend, classes="screen-title")
        yield Static(id="compare-table")
        with Grid(id="compare-charts"):
            for chart_id, spec in self._specs.items():
                yield MetricChart(spec, lock=self.lock, id=chart_id)
        yield Footer()

    def on_mount(self) -> None:
        self._show_table()
        for run, view in zip(self.runs, self.views):
            self._follow(run, view)

    def _show_table(self) -> None:
        with self.lock:
            table = compare_table(self.views, run_colors(len(self.views)))
        self.query_one("#compare-table", Static).update(table)

    @work(thread=True, exit_on_error=False, group="compare-follow")
    def _follow(self, run, view: RunView) -> None:
        worker = get_current_worker()
        feed = RunFeed(run, view, lambda: self.post_message(RunUpdated("compare")))
        feed.follow(lambda: worker.is_cancelled)

    @on(RunUpdated)
    def _on_update(self) -> None:
        wait = self._last_draw + MIN_REDRAW_SECONDS - time.monotonic()
        if wait <= 0:
            self._update()
        elif self._redraw_timer is None:
            self._redraw_timer = self.set_timer(wait, self._update)

    def _update(self) -> None:
        self._redraw_timer = None
        self._last_draw = time.monotonic()
        self._show_table()
        with self.lock:
            resumes = {view.run_id: view.resume_steps() for view in self.views}
        for chart in self.query(MetricChart):
            # Resume lines only where they mean one thing: one run, or runs that resumed at the same steps.
            distinct = {tuple(r) for r in resumes.values()}
            chart.spec.resume_steps = list(distinct.pop()) if len(distinct) == 1 else []
            chart.refresh_if_changed()

    def _set_options(self, **changes: Any) -> None:
        values = {"ema": self.options.ema, "log_y": self.options.log_y, "x_axis": self.options.x_axis}
        values.update(changes)
        self.options = ChartOptions(**values)
        for chart in self.query(MetricChart):
            chart.set_options(self.options)

    def action_toggle_ema(self) -> None:
        self._set_options(ema=not self.options.ema)

    def action_toggle_log(self) -> None:
        self._set_options(log_y=not self.options.log_y)

    def action_cycle_x(self) -> None:
        self._set_options(x_axis=X_AXES[(X_AXES.index(self.options.x_axis) + 1) % len(X_AXES)])
        self.notify(f"x axis: {self.options.x_axis}", timeout=2)

    def action_back(self) -> None:
        self.app.action_show_runs()

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("Toggle EMA smoothing", "Smoothed lines over faint raw lines", self.action_toggle_ema),
            ("Toggle log-y", "Logarithmic y axis", self.action_toggle_log),
            ("Cycle x axis", "step → tokens → wall time", self.action_cycle_x),
        ]
