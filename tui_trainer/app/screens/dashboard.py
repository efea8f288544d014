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
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import get_current_worker

from tui_trainer.app.chart_catalog import CHARTS, chart_info, memory_empty_message, run_specs, sync_specs
from tui_trainer.app.chart_render import ChartOptions, ChartSpec
from tui_trainer.app.feed import RunFeed
from tui_trainer.app.format import ack_sentence
from tui_trainer.app.messages import RunUpdated
from tui_trainer.app.run_view import RunView
from tui_trainer.app.screens.dialogs import PromptDialog
from tui_trainer.app.series import X_AXES
from tui_trainer.app.widgets.chart import MetricChart
from tui_trainer.app.widgets.run_panels import (ErrorBanner, LinePane, RunHeader, SamplesPanel, ViewStrip,
                                                effective_status, event_line, hellaswag_skipped_message)
from tui_trainer.app.widgets.system_strip import SystemStrip

COMPACT_BELOW = (110, 32)  # columns, rows: under either, one panel at a time (z switches)
TALL_FROM = 45             # rows: from here the charts take more of the height than the text panels
ACK_PATIENCE = 120.0  # seconds before an unanswered control request is reported
MIN_REDRAW_SECONDS = 0.2  # at most five redraws a second however fast events come (replay, bursts)


def chart_specs(view: RunView) -> dict[str, ChartSpec]:
    return run_specs(view)  # which charts and what each draws: app/chart_catalog.py (C1)


class DashboardScreen(Screen):
    BINDINGS = [
        # Runs, Help and Quit first: a narrow footer cuts from the right, and these must stay reachable.
        Binding("escape", "back", "Runs"),
        Binding("f1,question_mark", "app.help", "Help"),
        Binding("ctrl+q", "app.quit", "Quit"),
        Binding("s", "stop", "Stop"),
        Binding("k", "checkpoint", "Ckpt"),
        Binding("p", "sample", "Sample"),
        Binding("e", "evaluate", "Eval"),
        Binding("r", "resume", "Resume"),
        Binding("n", "edit_as_new", "Edit as new run"),
        Binding("z", "toggle_compact", "Layout"),
        Binding("v", "next_view", "Next view", show=False),
        *[Binding(str(i + 1), f"show_view({i})", f"Chart: {info.title} (one at a time)", show=False)
          for i, info in enumerate(CHARTS[:9])],
        Binding("a", "show_samples", "Samples"),
        Binding("o", "show_logs", "Output", show=False),
        Binding("m", "toggle_ema", "EMA", show=False),
        Binding("l", "toggle_log", "Log-y", show=False),
        Binding("x", "cycle_x", "X axis", show=False),
        Binding("left_square_bracket", "scrub(-1)", "Older sample", show=False),
        Binding("right_square_bracket", "scrub(1)", "Newer sample", show=False),
        Binding("left_curly_bracket", "scrub_first", "First sample", show=False),
        Binding("right_curly_bracket", "scrub_follow", "Newest sample (follow)", show=False),
        Binding("t", "next_prompt", "Next prompt", show=False),
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
        self.compact_choice: bool | None = None  # None: decided by the terminal size (z chooses)
        self.compact = False
        self.current_view = 0                   # compact mode: index in views() (charts, samples, output)
        self._offers: tuple | None = None       # what the footer offered last (state, resumable)

    def compose(self) -> ComposeResult:
        with Vertical(id="dash-top"):  # one docked block: header, strips, banner stay put, in this order
            yield RunHeader(id="run-header")
            yield SystemStrip(id="system-strip")
            yield ViewStrip(id="view-strip")
            yield ErrorBanner(id="error-banner")
        with Grid(id="charts"):
            for chart_id, spec in self._specs.items():
                yield MetricChart(spec, lock=self.view.lock, id=chart_id, empty_message=chart_info(chart_id).empty)
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
        self.query_one(SystemStrip).display = False
        self._apply_layout()
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
        self.query_one(ErrorBanner).show(view, status, self.feed.read_error, self.feed.resume_from)
        strip = self.query_one(SystemStrip)
        strip.display = view.system is not None
        strip.show(view)
        self._refresh_offers()
        with view.lock:
            skipped = "" if view.hellaswag_points else view.hellaswag_skipped
            sync_specs(self._specs, view)
            logs, logs_total = list(view.logs), view.logs_total
            output, output_total = list(self.feed.output.lines), self.feed.output.total
            acks = {rid: view.acks[rid] for rid in self.pending if rid in view.acks}
        hellaswag = self.query_one("#chart-hellaswag", MetricChart)
        wanted = hellaswag_skipped_message(skipped) if skipped else chart_info("chart-hellaswag").empty
        memory = self.query_one("#chart-memory", MetricChart)
        for chart, words in ((hellaswag, wanted), (memory, memory_empty_message(view.trainer))):
            if chart.empty_message != words:
                chart.empty_message = words
                chart.set_spec(chart.spec)  # drops the cached frame so the new words show
        for chart in self.query(MetricChart):
            chart.refresh_if_changed()
        self.query_one(SamplesPanel).show(view)
        self.query_one("#output", LinePane).append_new(output, output_total)
        self.query_one("#events", LinePane).append_new(logs, logs_total, event_line)
        for request_id, ack in acks.items():
            action, _ = self.pending.pop(request_id)
            ok = bool(ack.get("ok"))
            if action == "sample" and not ok:
                self._samples().browser.cancel_request()
                self._samples().show(view)
            self.notify(ack_sentence(ack), severity="information" if ok else "warning")

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
            self.notify(f"{self.run.id} is not running ({label}).", severity="warning")
            return False
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer a key only where it works: control keys while the run runs, r where a resume can start."""
        state = effective_status(self.view, self.feed.status)[0]
        if action in ("stop", "checkpoint", "sample", "evaluate"):
            return state == "running"
        if action == "resume":
            return self.feed.resume_from is not None
        if action == "edit_as_new":
            return state not in ("running", "queued")
        return True

    def _refresh_offers(self) -> None:
        offers = (effective_status(self.view, self.feed.status)[0], self.feed.resume_from)
        if offers != self._offers:
            self._offers = offers
            self.refresh_bindings()

    def action_edit_as_new(self) -> None:
        self.app.open_run_config(self.run.id)

    def action_stop(self) -> None:
        if self._is_running():
            self.app.confirm_stop(self.run.id)

    def action_resume(self) -> None:
        if self.feed.resume_from is None:  # the palette reaches this even where the key is not offered
            self.notify(f"{self.run.id} has nothing to resume: running, finished, or no checkpoint.",
                        severity="warning")
            return
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
                prompt = prompt or default  # an emptied box samples the config's prompt, as the trainer does
                with self.view.lock:
                    self._samples().browser.request(self.view.samples, prompt)
                self._samples().show(self.view)
                self._control("sample", prompt=prompt)

        self.app.push_screen(PromptDialog("Sample now — prompt", value=default,
                                          hint="The trainer generates at the next step boundary."), chosen)

    @work(thread=True, exit_on_error=False, group="control")
    def _control(self, action: str, **payload: Any) -> None:
        try:
            request_id = self.run.send_control(action, **payload)
        except Exception as e:  # RunNotRunning and friends carry a user-facing sentence
            if action == "sample":
                self._samples().browser.cancel_request()
            self.app.call_from_thread(self.notify, str(e), severity="error", timeout=8)
            return
        self.app.call_from_thread(self._sent, request_id, action)

    def _sent(self, request_id: str, action: str) -> None:
        self.pending[request_id] = (action, time.monotonic())
        self.notify(f"{action} requested; the trainer acts at the next step boundary.", timeout=3)

    def action_back(self) -> None:
        self.app.action_show_runs()

    # ------------------------------------------------------------------------------------------ layout
    def views(self) -> list[tuple[str, str]]:
        """(widget id, short name) of what the compact layout shows one at a time: charts, samples, output."""
        return [(chart_id, chart_info(chart_id).name) for chart_id in self._specs] + [
            ("samples", "samples"), ("logs", "output")]

    def on_resize(self, event) -> None:
        self._apply_layout()
        self.query_one(RunHeader).show(self.view, self.feed.status)

    def _apply_layout(self) -> None:
        size = self.size if self.size.width else self.app.size
        auto = size.width < COMPACT_BELOW[0] or size.height < COMPACT_BELOW[1]
        self.compact = auto if self.compact_choice is None else self.compact_choice
        self.set_class(self.compact, "-compact")
        self.set_class(size.height >= TALL_FROM, "-tall")
        chart_ids = list(self._specs)
        view_id = self.views()[self.current_view][0]
        for chart in self.query(MetricChart):
            chart.set_class(chart.id == view_id, "-current")
        self.set_class(view_id in chart_ids, "-view-chart")
        self.set_class(view_id == "samples", "-view-samples")
        self.set_class(view_id == "logs", "-view-logs")
        self.query_one(ViewStrip).show(self.views(), self.current_view)

    def action_toggle_compact(self) -> None:
        self.compact_choice = not self.compact
        self._apply_layout()
        self.notify("Layout: one panel at a time (1-6 charts, a samples, o output)" if self.compact else
                    "Layout: every chart at once", timeout=3)

    def action_show_view(self, index: int) -> None:
        if index >= len(self._specs):
            return
        if not self.compact:  # a chart key in the full layout zooms into that chart
            self.compact_choice = True
        self.current_view = index
        self._apply_layout()

    def action_next_view(self) -> None:
        if not self.compact:
            self.compact_choice = True
        self.current_view = (self.current_view + 1) % len(self.views())
        self._apply_layout()

    def action_show_samples(self) -> None:
        self._show_named("samples")

    def action_show_logs(self) -> None:
        self._show_named("logs")

    def _show_named(self, view_id: str) -> None:
        self.current_view = [v for v, _ in self.views()].index(view_id)
        self._apply_layout()
        if not self.compact:  # everything is on screen already: put the keyboard there
            (self._samples() if view_id == "samples" else self.query_one("#logs")).focus()

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("Stop run", "Graceful stop: the trainer checkpoints, then exits", self.action_stop),
            ("Checkpoint now", "Write a checkpoint at the next step boundary", self.action_checkpoint),
            ("Sample now…", "Generate text from a prompt you type", self.action_sample),
            ("Evaluate now", "Validation loss and HellaSwag at the next step boundary", self.action_evaluate),
            ("Resume run", "Continue a stopped/failed/lost run from its newest checkpoint", self.action_resume),
            ("Edit as new run", "This run's config in the editor, as a new run", self.action_edit_as_new),
            ("Toggle layout", "One chart at a time (compact) or every chart at once", self.action_toggle_compact),
            ("Show samples", "The samples panel (compact layout: instead of the chart)", self.action_show_samples),
            ("Toggle EMA smoothing", "Smoothed line over a faint raw line", self.action_toggle_ema),
            ("Toggle log-y", "Logarithmic y axis on every chart", self.action_toggle_log),
            ("Cycle x axis", "step → tokens → wall time", self.action_cycle_x),
        ]

