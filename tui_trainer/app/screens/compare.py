"""Compare runs: their train loss, val loss and HellaSwag overlaid, each run in its own colour, live."""

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

from tui_trainer.app.chart_render import PALETTE, ChartOptions, ChartSpec, Line
from tui_trainer.app.feed import RunFeed
from tui_trainer.app.messages import RunUpdated
from tui_trainer.app.run_view import HELLASWAG_GPT2_124M, HELLASWAG_RANDOM, RunView
from tui_trainer.app.screens.dashboard import MIN_REDRAW_SECONDS
from tui_trainer.app.series import X_AXES
from tui_trainer.app.widgets.chart import MetricChart


def compare_specs(views: list[RunView]) -> dict[str, ChartSpec]:
    def lines(series: str, sparse: bool = False) -> list[Line]:
        return [Line(v.run_id, v.series[series], PALETTE[i % len(PALETTE)], sparse=sparse) for i, v in enumerate(views)]

    return {
        "cmp-train": ChartSpec("train loss", lines("train_loss")),
        "cmp-val": ChartSpec("val loss", lines("val_loss", True)),
        "cmp-hellaswag": ChartSpec(f"HellaSwag acc_norm · random {HELLASWAG_RANDOM} · GPT-2 124M "
                                   f"{HELLASWAG_GPT2_124M}", lines("hellaswag", True),
                                   hlines=[(HELLASWAG_RANDOM, "random", (150, 150, 150)),
                                           (HELLASWAG_GPT2_124M, "GPT-2 124M", (90, 210, 120))],
                                   ylim=(0.2, 0.32)),
        "cmp-lr": ChartSpec("learning rate", lines("lr")),
    }


class CompareScreen(Screen):
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
            legend.append(f"■ {run.id}  ", style=f"rgb({r},{g},{b})")
        yield Static(legend, classes="screen-title")
        with Grid(id="compare-charts"):
            for chart_id, spec in self._specs.items():
                yield MetricChart(spec, lock=self.lock, id=chart_id)
        yield Footer()

    def on_mount(self) -> None:
        for run, view in zip(self.runs, self.views):
            self._follow(run, view)

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
        for chart in self.query(MetricChart):
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
