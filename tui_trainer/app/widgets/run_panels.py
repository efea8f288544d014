"""The dashboard's text panels: run header, error banner, samples, and the two log panes."""

from __future__ import annotations

import time

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import RichLog, Static

from tui_trainer.app import format as fmt
from tui_trainer.app.run_view import HELLASWAG_GPT2_124M, HELLASWAG_RANDOM, RunView
from tui_trainer.app.runs_model import STATUS_STYLE
from tui_trainer.app.sample_browser import SampleBrowser, SampleView


def effective_status(view: RunView, status) -> tuple[str, str, str]:
    """(state, label, reason): the process status (tui_trainer.runs) when known, else what the events say."""
    if status is not None:
        return status.state, status.label, status.reason
    if view.end_status:
        return view.end_status, view.end_status, view.end_reason
    return ("running", "running", "") if view.segments else ("created", "waiting for the trainer", "")


def header_renderable(view: RunView, status, width: int, now: float | None = None):
    now = time.time() if now is None else now
    state, label, _ = effective_status(view, status)
    live = state == "running"
    first = Text.assemble((view.run_id or "run", "bold"), "  ", (label.upper(), STATUS_STYLE.get(state, "")), "  ")
    facts = [view.trainer and f"trainer {view.trainer}",
             view.device and f"{view.device_name or view.device} ({view.device})",
             view.world_size and f"world {view.world_size}", view.dtype,
             view.params and f"{fmt.count(view.params)} params",
             view.grad_accum_steps and f"accum {view.grad_accum_steps}",
             len(view.segments) > 1 and f"resumed ×{len(view.segments) - 1}"]
    first.append(" · ".join(str(f) for f in facts if f), style="dim")

    step_text = "step —"
    if view.step is not None:
        step_text = f"step {view.step + 1:,}" + (f"/{view.max_steps:,}" if view.max_steps else "")
    bar = ProgressBar(total=1.0, completed=view.progress(), width=max(10, min(60, width - 40)))
    progress = Table.grid(padding=(0, 1))
    progress.add_row(bar, Text(f"{step_text}  {fmt.percent(view.progress())}"))

    hs = view.hellaswag_points[-1] if view.hellaswag_points else None
    figures = [
        ("elapsed", fmt.duration(view.elapsed(now if live else None))),
        ("ETA", fmt.duration(view.eta()) if live else "—"),
        ("tok/s", fmt.count(view.tok_per_s)),
        ("MFU", fmt.percent(view.mfu)),
        ("loss", fmt.number(view.loss)),
        ("best val", fmt.number(view.best_val)),
        ("HellaSwag", f"{hs.acc_norm:.4f}" if hs else "—"),
        ("lr", fmt.number(view.lr)),
    ]
    third = Text()
    for label_, value in figures:
        third.append(f"{label_} ", style="dim")
        third.append(f"{value}   ", style="bold")
    return Group(first, progress, third)


class RunHeader(Static):
    def show(self, view: RunView, status) -> None:
        with view.lock:
            self.update(header_renderable(view, status, self.size.width or 100))


def banner_text(view: RunView, status, read_error: str | None = None) -> Text | None:
    """The prominent line for a failed / lost run, error events or an unreadable log; None when all is well."""
    state, label, reason = effective_status(view, status)
    last_error = view.errors[-1].message.strip().splitlines()[0] if view.errors else ""
    if state not in ("failed", "lost") and not view.errors and not read_error:
        return None
    text = Text()
    if read_error:
        text.append(f"✗ {read_error} (retrying)\n")
    if state in ("failed", "lost"):
        text.append(f"✗ Run {label}", style="bold")
        if reason:
            text.append(f": {reason}")
    if last_error and last_error not in (reason or ""):
        text.append(("\n" if len(text) else "") + f"✗ {len(view.errors)} error event(s); last: {last_error}")
    if state in ("failed", "lost"):
        text.append("\nFull trainer output is in the Output tab. After fixing the cause, press r to resume from "
                    "the newest checkpoint.", style="italic")
    return text


class ErrorBanner(Static):
    def show(self, view: RunView, status, read_error: str | None = None) -> None:
        with view.lock:
            text = banner_text(view, status, read_error)
        self.display = text is not None
        if text is not None:
            self.update(text)


def sample_renderable(sample: SampleView | None):
    if sample is None:
        return Text("No samples yet. They arrive every sample.every steps; press p to ask for one now.",
                    style="dim")
    r = sample.round
    head = Text.assemble(
        ("Samples ", "bold"), (f"step {r.step:,}", "bold cyan"),
        (f"  round {sample.index + 1}/{sample.count}", ""),
        (f"  prompt {sample.prompt_index + 1}/{sample.prompt_count}", "dim"),
        (f"  ({r.source})" if r.source else "", "dim"),
        ("  ● live" if sample.following else ("  ◼ newest" if sample.is_newest else "  ◀ scrubbed"), "dim"),
    )
    parts = [head, Text("[ ] scrub · { first · } newest · t prompt", style="dim")]
    for i, body in enumerate(r.texts):
        text = Text(f"{i + 1}. ", style="dim")
        text.append(sample.prompt, style="bold")
        text.append(body)
        parts.append(text)
    return Group(*parts)


class SamplesPanel(VerticalScroll):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.browser = SampleBrowser()
        self._shown: SampleView | None = None

    def compose(self):
        yield Static(id="samples-body")

    def show(self, view: RunView) -> None:
        with view.lock:
            sample = self.browser.current(view.samples)
        if sample != self._shown:
            self._shown = sample
            self.query_one("#samples-body", Static).update(sample_renderable(sample))


class LinePane(RichLog):
    """Appends only the lines it has not shown yet from a (deque, total) source."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=1000, wrap=False, markup=False, highlight=False)
        self.shown_total = 0

    def append_new(self, lines, total: int, render=lambda line: line) -> None:
        new = total - self.shown_total
        if new <= 0:
            return
        pending = list(lines)[-min(new, len(lines)):] if lines else []
        for line in pending:
            self.write(render(line))
        self.shown_total = total


LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "warn": "yellow", "info": "", "debug": "dim"}


def event_line(line) -> Text:
    stamp = time.strftime("%H:%M:%S", time.localtime(line.t)) if line.t else "--:--:--"
    return Text.assemble((stamp + " ", "dim"), (line.message, LEVEL_STYLE.get(line.level, "")))


def hellaswag_title(view: RunView) -> str:
    """Short enough for a third of a terminal: plotext drops a title wider than the plot."""
    refs = f"rand {HELLASWAG_RANDOM} · GPT-2 {HELLASWAG_GPT2_124M}"
    if not view.hellaswag_points:
        return f"HellaSwag acc_norm · {refs}"
    p = view.hellaswag_points[-1]
    return f"HellaSwag {p.acc_norm:.4f} · {refs}"
