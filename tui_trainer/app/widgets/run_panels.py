"""The dashboard's text panels: run header, error banner, samples, and the two log panes."""

from __future__ import annotations

import time

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import RichLog, Static

from tui_trainer.app import format as fmt
from tui_trainer.app.run_view import RunView
from tui_trainer.app.runs_model import STATUS_STYLE, environment_hint
from tui_trainer.app.sample_browser import REQUESTED, SampleBrowser, SampleView


def effective_status(view: RunView, status) -> tuple[str, str, str]:
    """(state, label, reason): the process status (tui_trainer.runs) when known, else what the events say."""
    if status is not None:
        return status.state, status.label, status.reason
    if view.end_status:
        return view.end_status, view.end_status, view.end_reason
    return ("running", "running", "") if view.segments else ("created", "waiting for the trainer", "")


def _fit(parts: list[Text], width: int, sep: str = "  ") -> Text:
    """Join ``parts`` (most important first) while they fit in ``width`` cells; the rest are left out."""
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    for part in parts:
        extra = (len(sep) if len(line) else 0) + part.cell_len
        if len(line) and line.cell_len + extra > width:
            continue  # a later, shorter part may still fit
        if len(line):
            line.append(sep)
        line.append_text(part)
    line.truncate(width, overflow="ellipsis")
    return line


def progress_bar(fraction: float, width: int) -> Text:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return Text.assemble(("━" * filled, "bold green"), ("━" * (width - filled), "grey35"))


def alert_text(view: RunView) -> Text | None:
    """The trainer's loss alerts (non-finite values, spikes): how many, and the newest."""
    alerts = getattr(view, "alerts", None)
    if not alerts:
        return None
    last = alerts[-1]
    what = last.message.strip().splitlines()[0] if last.message.strip() else last.kind
    return Text(f"⚠ {len(alerts)} alert{'s' if len(alerts) > 1 else ''}: {what} (step {last.step:,})",
                style="bold red" if last.kind == "nonfinite" else "bold yellow")


def header_renderable(view: RunView, status, width: int, now: float | None = None) -> Text:
    """Two lines whatever the width: who/where/how far, then the figures. Parts that do not fit are dropped
    (least important first), never wrapped, so the header stays two lines tall on an 80-column terminal."""
    now = time.time() if now is None else now
    state, label, _ = effective_status(view, status)
    live = state == "running"
    step_text = "step —"
    if view.step is not None:
        step_text = f"step {view.step + 1:,}" + (f"/{view.max_steps:,}" if view.max_steps else "")
    state_text = Text(label.upper(), style=STATUS_STYLE.get(state, ""))
    step_part = Text(f"{step_text} {fmt.percent(view.progress(), 0)}")
    name = Text(view.run_id or "run", style="bold")
    name.truncate(max(12, width - state_text.cell_len - step_part.cell_len - 4), overflow="ellipsis")
    first = [name, state_text, step_part]
    used = sum(part.cell_len + 2 for part in first)
    timing = [Text.assemble(("elapsed ", "dim"), fmt.duration(view.elapsed(now if live else None)))]
    if live:
        timing.append(Text.assemble(("ETA ", "dim"), fmt.duration(view.eta())))
    used += sum(part.cell_len + 2 for part in timing)
    bar_width = min(30, width - used - 2)
    if bar_width >= 8:
        first.append(progress_bar(view.progress(), bar_width))
    first += timing
    device = view.device_name or view.device
    facts = [device and (f"{device} ×{view.world_size}" if view.world_size else device), view.dtype,
             view.params and f"{fmt.count(view.params)} params", view.trainer and f"trainer {view.trainer}",
             len(view.segments) > 1 and f"resumed ×{len(view.segments) - 1}"]
    first += [Text(str(f), style="dim") for f in facts if f]

    hs = view.hellaswag_points[-1] if view.hellaswag_points else None
    figures = [("loss", fmt.number(view.loss)), ("best val", fmt.number(view.best_val)),
               ("HellaSwag", f"{hs.acc_norm:.4f}" if hs else ("skipped" if view.hellaswag_skipped else "—")),
               ("tok/s", fmt.count(view.tok_per_s)), ("MFU", fmt.percent(view.mfu)),
               ("lr", fmt.number(view.lr))]
    second = [Text.assemble((f"{name} ", "dim"), (value, "bold")) for name, value in figures]
    alert = alert_text(view)
    if alert is not None:  # beside the loss it is about, shortened rather than left out on a narrow terminal
        alert.truncate(max(12, width - second[0].cell_len - 2), overflow="ellipsis")
        second.insert(1, alert)
    return Text("\n").join([_fit(first, width), _fit(second, width, "   " if width >= 120 else "  ")])


class RunHeader(Static):
    def show(self, view: RunView, status) -> None:
        width = max(20, self.content_region.width or self.size.width or 100)
        with view.lock:
            self.update(header_renderable(view, status, width))


def first_paragraph(text: str) -> str:
    """Up to the first blank line, its lines joined: a message's own words, without what follows."""
    paragraph = (text or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())


def said_once(reason: str, error: str) -> str:
    """The status reason and the error message often say the same (one cut short, or one inside the other):
    say it once, whole."""
    if not reason or not error:
        return reason or error
    short, long = sorted((reason, error), key=len)
    if short in long or long.startswith(short[:80]):
        return long
    return f"{reason} — {error}"


def banner_text(view: RunView, status, read_error: str | None = None,
                resume_from: int | None = None) -> Text | None:
    """What went wrong, once and whole, and what the user can do next; None when all is well."""
    state, label, reason = effective_status(view, status)
    failed = state in ("failed", "lost")
    if not failed and not view.errors and not read_error:
        return None
    text = Text()
    if read_error:
        text.append(f"✗ {read_error} (retrying)\n")
    reason = first_paragraph(reason)
    error = first_paragraph(view.errors[-1].message) if view.errors else ""
    if failed:
        # What to do first (a short banner on a small terminal may scroll), then the reason, once and whole.
        if resume_from is not None:
            hint = f"press r to resume from the checkpoint at step {resume_from:,} once the cause is fixed"
        else:
            hint = "no checkpoint: press n to edit its config as a new run"
        text.append(f"✗ Run {label}", style="bold")
        text.append(f" — {hint}", style="italic")
        if reason or error:
            text.append("\n" + said_once(reason, error))
        env = environment_hint(f"{reason} {error}")
        if env:
            text.append(f"\n{env}", style="italic")
    elif error:
        text.append(f"✗ {len(view.errors)} error event{'s' if len(view.errors) > 1 else ''}; last: {error}")
    text.rstrip()
    return text if len(text) else None


class ErrorBanner(Static):
    def show(self, view: RunView, status, read_error: str | None = None,
             resume_from: int | None = None) -> None:
        with view.lock:
            text = banner_text(view, status, read_error, resume_from)
        self.display = text is not None
        if text is not None:
            self.update(text)


def config_value(config, section: str, key: str):
    """``config[section][key]`` from a run_start config, or None (an old or hand-written log may lack it)."""
    part = config.get(section) if isinstance(config, dict) else None
    return part.get(key) if isinstance(part, dict) else None


SOURCE_WORDS = {"schedule": "scheduled", "control": "asked for with p", "final": "final"}


def sample_renderable(sample: SampleView | None, every: int | None = None):
    if sample is None:
        when = f"every {every} steps (sample.every)" if every else "at the steps sample.every sets"
        return Text(f"No samples yet.\nThe trainer samples {when}; press p to ask for one now.", style="dim")
    r = sample.round
    head = Text.assemble(
        ("Samples ", "bold"), (f"prompt {sample.prompt_index + 1}/{sample.prompt_count}", "bold"),
        "  ", (f"step {r.step:,}", "bold cyan"), f"  round {sample.index + 1}/{sample.count}",
        (f"  {SOURCE_WORDS.get(r.source, r.source)}" if r.source else "", "dim"))
    if sample.mode == REQUESTED:
        state = Text("◆ the sample you asked for; it stays until you press [ ] { } or t", style="bold yellow")
    elif sample.following:
        state = Text("● following the newest sample · [ ] older/newer · t prompt", style="dim")
    elif sample.is_newest:
        state = Text("◼ newest of this prompt (held on it) · } follow every prompt", style="dim")
    else:
        state = Text("◀ an older round, held here · ] newer · } follow the newest", style="dim")
    parts = [head, state]
    if sample.waiting_for is not None:
        parts.append(Text(f"… waiting for your sample of “{sample.waiting_for}” (next step boundary)",
                          style="italic"))
    parts.append(Text.assemble(("Prompt: ", "dim"), (f"“{sample.prompt}”", "bold")))
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
        self._shown: tuple | None = None

    def compose(self):
        yield Static(sample_renderable(None), id="samples-body")

    def show(self, view: RunView) -> None:
        with view.lock:
            sample = self.browser.current(view.samples)
            every = config_value(view.config, "sample", "every")
        key = (sample, every)
        if key != self._shown:
            self._shown = key
            self.query_one("#samples-body", Static).update(sample_renderable(sample, every))


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


def hellaswag_skipped_message(reason: str) -> str:
    """The HellaSwag panel of a run whose trainer could not read the examples: why, and the fix."""
    return (f"HellaSwag skipped for this run:\n{first_paragraph(reason)}\n\n"
            "Fix: set eval.hellaswag_path to a local HellaSwag val .jsonl (gpt-console prepare --hellaswag "
            "fetches one) and launch a new run with it.")


class ViewStrip(Static):
    """Compact layout: which panel is shown and the key for each (1-6 charts, a samples, o output)."""

    def show(self, views: list[tuple[str, str]], current: int) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        charts = [name for view_id, name in views if view_id.startswith("chart-")]
        keys = [str(i + 1) for i in range(len(charts))] + ["a", "o"]
        for i, ((_, name), key) in enumerate(zip(views, keys)):
            if i:
                text.append(" ")
            style = "reverse bold" if i == current else ""
            text.append(f" {key} ", style=f"bold {style}".strip())
            text.append(f"{name} ", style=style or "dim")
        text.append("  v next · z all charts", style="dim")
        self.update(text)
