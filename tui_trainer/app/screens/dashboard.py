"""Run dashboard: header, charts, HellaSwag, samples with a timeline, trainer output, errors, control keys.

A thread worker replays the run's event log and then follows it (feed.RunFeed); it posts RunUpdated, which
collapses in bursts, and the handler redraws only what changed.
"""

from __future__ import annotations

import time
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import get_current_worker

from tui_trainer.app.chart_render import PALETTE, ChartOptions, ChartSpec, Line
from tui_trainer.app.feed import RunFeed
from tui_trainer.app.messages import RunUpdated
from tui_trainer.app.run_view import HELLASWAG_GPT2_124M, HELLASWAG_RANDOM, RunView
from tui_trainer.app.screens.dialogs import PromptDialog
from tui_trainer.app.series import X_AXES
from tui_trainer.app.widgets.chart import MetricChart
from tui_trainer.app.widgets.run_panels import (ErrorBanner, LinePane, RunHeader, SamplesPanel, effective_status,
                                                event_line, hellaswag_title)

ACK_PATIENCE = 120.0  # seconds before an unanswered control request is reported
MIN_REDRAW_SECONDS = 0.2  # at most five redraws a second however fast events come (replay, bursts)


def chart_specs(view: RunView) -> dict[str, ChartSpec]:
    s = view.series
    return {
        "chart-loss": ChartSpec("loss", [Line("train", s["train_loss"], PALETTE[0]),
                                         Line("val", s["val_loss"], PALETTE[1], sparse=True)]),
        "chart-lr": ChartSpec("learning rate", [Line("lr", s["lr"], PALETTE[2])]),
        "chart-hellaswag": ChartSpec(hellaswag_title(view), [Line("acc_norm", s["hellaswag"], PALETTE[3],
                                                                  sparse=True)],
                                     hlines=[(HELLASWAG_RANDOM, "random", (150, 150, 150)),
                                             (HELLASWAG_GPT2_124M, "GPT-2 124M", (90, 210, 120))],
                                     ylim=(0.2, 0.32)),
        "chart-toks": ChartSpec("tok/s", [Line("tok/s", s["tok_per_s"], PALETTE[5])]),
        "chart-grad": ChartSpec("grad norm", [Line("grad norm", s["grad_norm"], PALETTE[4])]),
    }


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("k", "checkpoint", "Checkpoint"),
        Binding("p", "sample", "Sample"),
        Binding("e", "evaluate", "Eval"),
        Binding("r", "resume", "Resume"),
        Binding("m", "toggle_ema", "EMA"),
        Binding("l", "toggle_log", "Log-y"),
        Binding("x", "cycle_x", "X axis"),
        Binding("left_square_bracket", "scrub(-1)", "Older sample", show=False),
        Binding("right_square_bracket", "scrub(1)", "Newer sample", show=False),
        Binding("left_curly_bracket", "scrub_first", "First sample", show=False),
        Binding("right_curly_bracket", "scrub_follow", "Newest sample (follow)", show=False),
        Binding("t", "next_prompt", "Next prompt", show=False),
        Binding("escape", "back", "Runs"),
    ]

    def __init__(self, run) -> None:
        super().__init__()
        self.run = run
        self.view = RunView(run_id=run.id)
        self.feed = RunFeed(run, self.view, lambda: self.post_message(RunUpdated(run.id)))
        self.options = ChartOptions()
        self.pending: dict[str, tuple[str, float]] = {}  # control request id -> (action, sent at)
        self._specs = chart_specs(self.view)
        self._last_draw = 0.0
        self._redraw_timer = None

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header")
        yield ErrorBanner(id="error-banner")
        with Grid(id="charts"):
            for chart_id, spec in self._specs.items():
                yield MetricChart(spec, lock=self.view.lock, id=chart_id,
                                  empty_message="no HellaSwag evaluation yet" if "hellaswag" in chart_id else
                                  "waiting for the first step…")
        with Horizontal(id="bottom"):
            yield SamplesPanel(id="samples")
            with TabbedContent(id="logs"):
                with TabPane("Output", id="tab-output"):
                    yield LinePane(id="output")
                with TabPane("Events", id="tab-events"):
                    yield LinePane(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ErrorBanner).display = False
        self._update()
        self._follow()
        self.set_interval(1.0, self._tick)

    @work(thread=True, exit_on_error=False, exclusive=True, group="follow")
    def _follow(self) -> None:
        worker = get_current_worker()
        self.feed.refresh_status()
        self.feed.follow(lambda: worker.is_cancelled)

    def _tick(self) -> None:
        """Once a second: elapsed/ETA move even without events, and overdue control requests are reported."""
        self.query_one(RunHeader).show(self.view, self.feed.status)
        now = time.monotonic()
        for request_id, (action, sent) in list(self.pending.items()):
            if now - sent > ACK_PATIENCE:
                del self.pending[request_id]
                self.notify(f"No answer to '{action}' after {ACK_PATIENCE:.0f} s. The trainer acts at step "
                            "boundaries; a long step or evaluation delays it.", severity="warning", timeout=8)

    @on(RunUpdated)
    def _on_update(self, message: RunUpdated) -> None:
        wait = self._last_draw + MIN_REDRAW_SECONDS - time.monotonic()
        if wait <= 0:
            self._update()
        elif self._redraw_timer is None:
            self._redraw_timer = self.set_timer(wait, self._deferred_update)

    def _deferred_update(self) -> None:
        self._redraw_timer = None
        self._update()

    def _update(self) -> None:
        self._last_draw = time.monotonic()
        view, status = self.view, self.feed.status
        self.query_one(RunHeader).show(view, status)
        self.query_one(ErrorBanner).show(view, status, self.feed.read_error)
        with view.lock:
            self._specs["chart-hellaswag"].title = hellaswag_title(view)
            resumes = view.resume_steps()
            logs, logs_total = list(view.logs), view.logs_total
            output, output_total = list(self.feed.output.lines), self.feed.output.total
            acks = {rid: view.acks[rid] for rid in self.pending if rid in view.acks}
        for chart in self.query(MetricChart):
            chart.spec.resume_steps = resumes
            chart.refresh_if_changed()
        self.query_one(SamplesPanel).show(view)
        self.query_one("#output", LinePane).append_new(output, output_total)
        self.query_one("#events", LinePane).append_new(logs, logs_total, event_line)
        for request_id, ack in acks.items():
            action, _ = self.pending.pop(request_id)
            ok = bool(ack.get("ok"))
            detail = f": {ack['message']}" if ack.get("message") else ""
            self.notify(f"{action} {'done' if ok else 'refused'} at step {ack.get('step')}{detail}",
                        severity="information" if ok else "warning")

    # ------------------------------------------------------------------------------------------ charts
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

    # ----------------------------------------------------------------------------------------- samples
    def _samples(self) -> SamplesPanel:
        return self.query_one(SamplesPanel)

    def action_scrub(self, delta: int) -> None:
        with self.view.lock:
            self._samples().browser.scrub(self.view.samples, delta)
        self._samples().show(self.view)

    def action_scrub_first(self) -> None:
        with self.view.lock:
            self._samples().browser.first(self.view.samples)
        self._samples().show(self.view)

    def action_scrub_follow(self) -> None:
        self._samples().browser.follow()
        self._samples().show(self.view)

    def action_next_prompt(self) -> None:
        with self.view.lock:
            self._samples().browser.next_prompt(self.view.samples)
        self._samples().show(self.view)

    # ----------------------------------------------------------------------------------------- control
    def _is_running(self) -> bool:
        state, label, _ = effective_status(self.view, self.feed.status)
        if state != "running":
            self.notify(f"{self.run.id} is not running ({label}). Press r to resume it from its newest "
                        "checkpoint.", severity="warning")
            return False
        return True

    def action_stop(self) -> None:
        if self._is_running():
            self.app.confirm_stop(self.run.id)

    def action_resume(self) -> None:
        self.app.resume_run(self.run.id)

    def action_checkpoint(self) -> None:
        if self._is_running():
            self._control("checkpoint")

    def action_evaluate(self) -> None:
        if self._is_running():
            self._control("eval")

    def action_sample(self) -> None:
        if not self._is_running():
            return
        with self.view.lock:
            default = str(self.view.config.get("sample", {}).get("prompt", "")) or "Hello, I'm a language model,"

        def chosen(prompt: str | None) -> None:
            if prompt is not None:
                self._control("sample", prompt=prompt)

        self.app.push_screen(PromptDialog("Sample now — prompt", value=default,
                                          hint="The trainer generates at the next step boundary."), chosen)

    @work(thread=True, exit_on_error=False, group="control")
    def _control(self, action: str, **payload: Any) -> None:
        try:
            request_id = self.run.send_control(action, **payload)
        except Exception as e:  # RunNotRunning and friends carry a user-facing sentence
            self.app.call_from_thread(self.notify, str(e), severity="error", timeout=8)
            return
        self.app.call_from_thread(self._sent, request_id, action)

    def _sent(self, request_id: str, action: str) -> None:
        self.pending[request_id] = (action, time.monotonic())
        self.notify(f"{action} requested; the trainer acts at the next step boundary.", timeout=3)

    def action_back(self) -> None:
        self.app.action_show_runs()

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("Stop run", "Graceful stop: the trainer checkpoints, then exits", self.action_stop),
            ("Checkpoint now", "Write a checkpoint at the next step boundary", self.action_checkpoint),
            ("Sample now…", "Generate text from a prompt you type", self.action_sample),
            ("Evaluate now", "Validation loss and HellaSwag at the next step boundary", self.action_evaluate),
            ("Resume run", "Continue a stopped/failed/lost run from its newest checkpoint", self.action_resume),
            ("Toggle EMA smoothing", "Smoothed line over a faint raw line", self.action_toggle_ema),
            ("Toggle log-y", "Logarithmic y axis on every chart", self.action_toggle_log),
            ("Cycle x axis", "step → tokens → wall time", self.action_cycle_x),
        ]

