"""Everything the run dashboard shows, folded from the event log (channel/schema.py) one event at a time.

The follower thread applies events under ``lock``; widgets read under the same lock when they redraw. Nothing
here touches Textual, so the view model is unit-tested with plain event dicts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from tui_trainer.app.format import ack_sentence
from tui_trainer.app.series import Series, wilson_interval

# HellaSwag acc_norm reference lines: random guessing over 4 endings, and OpenAI's GPT-2 124M.
HELLASWAG_RANDOM = 0.25
HELLASWAG_GPT2_124M = 0.2955

# How the trainer's warning starts (train.py: _load_hellaswag, and the one-file twin).
HELLASWAG_SKIPPED = re.compile(r"HellaSwag skipped(?: for this run)?:?\s*")
LOG_LINES_KEPT = 500
ETA_WINDOW = 50  # recent steps the ETA averages over (includes eval/sample pauses, so it is honest)


@dataclass
class SampleRound:
    step: int
    texts: list[str]
    source: str
    t: float
    serial: int = 0  # order of arrival in the run (a requested sample is the one arriving after the request)


@dataclass
class LogLine:
    t: float
    level: str
    message: str


@dataclass
class ErrorEvent:
    t: float
    message: str
    traceback: str


@dataclass
class Segment:
    """One trainer process's stretch of the run (a resume starts a new one)."""
    start_t: float
    start_step: int
    resumed_from_step: int | None
    wall_offset: float  # training wall seconds accumulated before this segment


@dataclass
class Alert:
    """A trainer's warning about the loss (``alert`` event: a non-finite value or a spike)."""
    t: float
    step: int
    kind: str
    message: str
    value: float | None


@dataclass
class HellaSwagPoint:
    step: int
    acc_norm: float
    acc: float
    correct_norm: int
    total: int


class SampleTimeline:
    """Sample rounds per prompt, in step order, so the dashboard can scrub one prompt's text through time."""

    def __init__(self) -> None:
        self.by_prompt: dict[str, list[SampleRound]] = {}  # insertion order = order of first appearance
        self.latest_prompt: str | None = None
        self.arrived = 0  # rounds ever added (serial of the newest round)

    def add(self, prompt: str, sample: SampleRound) -> None:
        rounds = self.by_prompt.setdefault(prompt, [])
        # A resumed run re-samples steps it had already sampled before it died: the newer round wins. A
        # requested (control) and a scheduled sample of the same step are two different rounds: both stay.
        while rounds and (rounds[-1].step > sample.step or
                          rounds[-1].step == sample.step and rounds[-1].source == sample.source):
            rounds.pop()
        self.arrived += 1
        sample.serial = self.arrived
        rounds.append(sample)
        self.latest_prompt = prompt

    def prompts(self) -> list[str]:
        """Prompts in the order they first appeared: a prompt keeps its number while others arrive."""
        return list(self.by_prompt)

    def __len__(self) -> int:
        return sum(len(r) for r in self.by_prompt.values())


@dataclass
class RunView:
    run_id: str = ""
    # Filled from run_start.
    config: dict[str, Any] = field(default_factory=dict)
    trainer: str = ""
    params: int | None = None
    world_size: int | None = None
    device: str = ""
    device_name: str = ""
    dtype: str = ""
    grad_accum_steps: int | None = None
    max_steps: int | None = None
    peak_flops: float | None = None
    # Latest step figures.
    step: int | None = None
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tok_per_s: float | None = None
    mfu: float | None = None
    tokens: int | None = None
    best_val: float | None = None
    # Lifecycle.
    first_t: float | None = None
    last_t: float | None = None
    end_status: str | None = None
    end_reason: str = ""
    events_seen: int = 0
    segments: list[Segment] = field(default_factory=list)
    checkpoints: list[tuple[int, str, str]] = field(default_factory=list)  # (step, path, reason)
    errors: list[ErrorEvent] = field(default_factory=list)
    logs: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES_KEPT))
    logs_total: int = 0  # lines ever added to ``logs`` (a pane appends the ones it has not shown yet)
    acks: dict[str, dict] = field(default_factory=dict)  # control request id -> control_ack event
    hellaswag_points: list[HellaSwagPoint] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    system: dict | None = None  # the newest ``system`` event (per-rank machine figures)
    samples: SampleTimeline = field(default_factory=SampleTimeline)
    hellaswag_skipped: str = ""  # why this segment's trainer runs no HellaSwag evaluation ("" = it does)
    version: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.series: dict[str, Series] = {name: Series(name) for name in (
            "train_loss", "val_loss", "lr", "grad_norm", "tok_per_s", "mfu", "hellaswag", "hellaswag_acc",
            "hellaswag_lo", "hellaswag_hi")}  # lo/hi: acc_norm's binomial 95 % interval

    def reset(self) -> None:
        """Forget everything (the event log was replaced). Series are cleared in place: charts keep them."""
        with self.lock:
            fresh = RunView(run_id=self.run_id)
            for f in dataclasses.fields(self):
                if f.name not in ("lock", "run_id", "version"):
                    setattr(self, f.name, getattr(fresh, f.name))
            for s in self.series.values():
                s.truncate_from_step(-math.inf)
            self.version += 1

    # ------------------------------------------------------------------------------------------ folding
    def apply_many(self, events: Iterable[dict]) -> int:
        """Fold a batch. Runs of step events (most of any log) are folded column-wise, not one by one."""
        n = 0
        pending: list[dict] = []
        with self.lock:
            for event in events:
                n += 1
                if event.get("type") == "step":
                    pending.append(event)
                    continue
                if pending:
                    self._fold_steps(pending)
                    pending = []
                self.apply(event)
            if pending:
                self._fold_steps(pending)
            if n:
                self.version += 1
        return n

    def _fold_steps(self, events: list[dict]) -> None:
        if len(events) > 1:
            try:
                self._fold_step_columns(events)
            except (KeyError, TypeError, ValueError, OverflowError):
                for event in events:  # something malformed in there: the one-by-one path skips and notes it
                    self.apply(event)
            return
        self.apply(events[0])

    def _fold_step_columns(self, events: list[dict]) -> None:
        """Raises (and changes nothing) if any event lacks a field or has a non-number in one."""
        steps = np.array([int(e["step"]) for e in events], dtype=np.float64)
        columns = {name: np.array([e[key] for e in events], dtype=np.float64) for name, key in (
            ("train_loss", "loss"), ("lr", "lr"), ("grad_norm", "grad_norm"), ("tok_per_s", "tok_per_s"))}
        times = np.array([e["t"] for e in events], dtype=np.float64)
        tokens = np.array([e.get("tokens") for e in events], dtype=np.float64)  # a missing/null one is NaN
        if self.segments:
            seg = self.segments[-1]
            wall = seg.wall_offset + np.maximum(0.0, times - seg.start_t)
        else:
            wall = np.full(len(events), math.nan)
        for name, values in columns.items():
            self.series[name].extend(steps, values, tokens, wall)
        mfu = np.array([e.get("mfu") for e in events], dtype=np.float64)  # null on devices with no peak
        known_mfu = np.isfinite(mfu)
        if known_mfu.any():
            self.series["mfu"].extend(steps[known_mfu], mfu[known_mfu], tokens[known_mfu], wall[known_mfu])
        last = events[-1]
        self.step = int(last["step"])
        self.loss, self.lr = float(last["loss"]), float(last["lr"])
        self.grad_norm, self.tok_per_s = float(last["grad_norm"]), float(last["tok_per_s"])
        self.mfu = last.get("mfu")
        known = tokens[np.isfinite(tokens)]
        if len(known):
            self.tokens = int(known[-1])
        self.first_t = float(times[0]) if self.first_t is None else self.first_t
        self.last_t = float(times[-1])
        self.events_seen += len(events)

    def apply(self, e: dict) -> None:
        handler = _HANDLERS.get(e.get("type"))  # type: ignore[arg-type]
        t = e.get("t")
        if isinstance(t, (int, float)):
            self.first_t = t if self.first_t is None else self.first_t
            self.last_t = t
        self.events_seen += 1
        if handler is not None:
            try:
                handler(self, e)
            except (KeyError, TypeError, ValueError):
                # A malformed event (older schema, hand-edited log) must not take the dashboard down.
                self._log(LogLine(t or 0.0, "warning", f"unreadable {e.get('type')} event skipped"))

    def _log(self, line: LogLine) -> None:
        self.logs.append(line)
        self.logs_total += 1

    def _wall(self, t: float | None) -> float:
        if not self.segments or t is None:
            return math.nan
        seg = self.segments[-1]
        return seg.wall_offset + max(0.0, t - seg.start_t)

    def _on_run_start(self, e: dict) -> None:
        resumed = e.get("resumed_from_step")
        start_step = int(e.get("start_step", 0))
        offset = 0.0
        if self.segments:
            # Continue the wall clock from where the kept part of the previous segment ended.
            kept = self.series["train_loss"]
            kept.truncate_from_step(start_step)
            walls = kept.x("wall")
            offset = float(walls[-1]) if len(walls) else 0.0
        for s in self.series.values():
            s.truncate_from_step(start_step)
        self.hellaswag_points = [p for p in self.hellaswag_points if p.step < start_step]
        self.alerts = [a for a in self.alerts if a.step < start_step]
        self.segments.append(Segment(e["t"], start_step, resumed, offset))
        self.config = e.get("config") or self.config
        self.trainer = e.get("trainer", self.trainer)
        self.params = e.get("params", self.params)
        self.world_size = e.get("world_size", self.world_size)
        self.device = e.get("device", self.device)
        self.device_name = e.get("device_name", self.device_name)
        self.dtype = e.get("dtype", self.dtype)
        self.grad_accum_steps = e.get("grad_accum_steps", self.grad_accum_steps)
        self.max_steps = e.get("max_steps", self.max_steps)
        self.peak_flops = e.get("peak_flops", self.peak_flops)
        self.end_status, self.end_reason = None, ""
        self.hellaswag_skipped = ""
        if resumed is not None:
            self._log(LogLine(e["t"], "info", f"resumed from checkpoint at step {resumed}"))

    def _on_step(self, e: dict) -> None:
        self._fold_step_columns([e])
        self.events_seen -= 1  # apply() counted it already

    def _point_x(self, step: int, t: float) -> dict[str, float]:
        """x coordinates for an evaluation at ``step``: tokens trained by the last step at or before it."""
        loss = self.series["train_loss"]
        steps = loss.x("step")
        i = int(np.searchsorted(steps, step, side="right")) - 1
        tokens = float(loss.x("tokens")[i]) if i >= 0 else math.nan
        return {"tokens": tokens, "wall": self._wall(t)}

    def _on_val(self, e: dict) -> None:
        step, loss = int(e["step"]), float(e["loss"])
        self.series["val_loss"].append(step, loss, **self._point_x(step, e["t"]))
        if math.isfinite(loss) and (self.best_val is None or loss < self.best_val):
            self.best_val = loss

    def _on_hellaswag(self, e: dict) -> None:
        step = int(e["step"])
        point = HellaSwagPoint(step, float(e["acc_norm"]), float(e["acc"]), int(e["correct_norm"]), int(e["total"]))
        while self.hellaswag_points and self.hellaswag_points[-1].step >= step:
            self.hellaswag_points.pop()
        self.hellaswag_points.append(point)
        xs = self._point_x(step, e["t"])
        self.series["hellaswag"].append(step, point.acc_norm, **xs)
        self.series["hellaswag_acc"].append(step, point.acc, **xs)
        lo, hi = wilson_interval(point.correct_norm, point.total)
        self.series["hellaswag_lo"].append(step, lo, **xs)
        self.series["hellaswag_hi"].append(step, hi, **xs)

    def _on_sample(self, e: dict) -> None:
        texts = [str(t) for t in e.get("texts", [])]
        self.samples.add(str(e["prompt"]), SampleRound(int(e["step"]), texts, str(e.get("source", "")), e["t"]))

    def _on_checkpoint(self, e: dict) -> None:
        self.checkpoints.append((int(e["step"]), str(e["path"]), str(e.get("reason", ""))))
        self._log(LogLine(e["t"], "info", f"checkpoint at step {e['step']} ({e.get('reason', '')})"))

    def _on_log(self, e: dict) -> None:
        message = str(e["message"])
        skipped = HELLASWAG_SKIPPED.match(message)
        if skipped:  # the trainer could not read the examples (offline, bad path)
            self.hellaswag_skipped = message[skipped.end():].strip() or "no reason given"
        self._log(LogLine(e["t"], str(e.get("level", "info")), message))

    def _on_error(self, e: dict) -> None:
        err = ErrorEvent(e["t"], str(e["message"]), str(e.get("traceback", "")))
        self.errors.append(err)
        self._log(LogLine(e["t"], "error", err.message))

    def _on_control_ack(self, e: dict) -> None:
        self.acks[str(e["id"])] = e
        self._log(LogLine(e["t"], "info" if e.get("ok") else "warning", ack_sentence(e)))

    def _on_alert(self, e: dict) -> None:
        value = e.get("loss")  # the loss that raised it (NaN/inf for a non-finite alert)
        self.alerts.append(Alert(e["t"], int(e["step"]), str(e["kind"]), str(e.get("message", "")),
                                 None if value is None else float(value)))

    def _on_system(self, e: dict) -> None:
        """Keep the newest figures (the strip) and each rank's memory over steps (the memory chart)."""
        step = int(e["step"])
        self.system = e
        xs = self._point_x(step, e["t"])
        for rank in e["ranks"]:
            used = system_memory_bytes(rank)
            if used is not None:
                name = f"memory_rank{int(rank['rank'])}"
                self.series.setdefault(name, Series(name)).append(step, used / 2**30, **xs)

    def memory_ranks(self) -> list[int]:
        """Ranks with a memory series, in rank order."""
        prefix = "memory_rank"
        return sorted(int(name[len(prefix):]) for name in self.series if name.startswith(prefix))

    def _on_run_end(self, e: dict) -> None:
        self.end_status, self.end_reason = str(e["status"]), str(e.get("reason", ""))
        reason = self.end_reason
        if self.end_status == "stopped" and reason.startswith("signal SIGTERM"):
            # What the trainer saw; the stop itself came from the console, `gpt-console stop` or the system.
            reason = "stop requested (SIGTERM: the console's or `gpt-console stop`'s signal, or the system's)"
        self._log(LogLine(e["t"], "error" if self.end_status == "failed" else "info",
                          f"run {self.end_status}" + (f": {reason}" if reason else "")))

    # ------------------------------------------------------------------------------------------ figures
    def elapsed(self, now: float | None = None) -> float | None:
        """Training wall seconds (downtime between a stop and a resume not counted)."""
        if not self.segments:
            return None
        end = self.last_t if self.end_status or now is None else now
        seg = self.segments[-1]
        return seg.wall_offset + max(0.0, (end or seg.start_t) - seg.start_t)

    def seconds_per_step(self) -> float | None:
        loss = self.series["train_loss"]
        steps, walls = loss.x("step"), loss.x("wall")
        if len(steps) < 2:
            return None
        k = min(len(steps), ETA_WINDOW)
        ds, dw = steps[-1] - steps[-k], walls[-1] - walls[-k]
        return float(dw / ds) if ds > 0 and math.isfinite(dw) and dw >= 0 else None

    def eta(self) -> float | None:
        if self.max_steps is None or self.step is None or self.end_status:
            return None
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        return max(0, self.max_steps - self.step - 1) * per_step

    def progress(self) -> float:
        if not self.max_steps or self.step is None:
            return 0.0
        return min(1.0, (self.step + 1) / self.max_steps)

    def resume_steps(self) -> list[int]:
        return [s.start_step for s in self.segments[1:]]


def system_memory_bytes(rank: dict) -> float | None:
    """The memory a rank's chart follows: GPU memory in use on CUDA, the process's RSS otherwise."""
    for key in ("gpu_mem_used_bytes", "rss_bytes"):
        value = rank.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


_HANDLERS = {
    "run_start": RunView._on_run_start,
    "step": RunView._on_step,
    "val": RunView._on_val,
    "hellaswag": RunView._on_hellaswag,
    "sample": RunView._on_sample,
    "checkpoint": RunView._on_checkpoint,
    "log": RunView._on_log,
    "error": RunView._on_error,
    "control_ack": RunView._on_control_ack,
    "alert": RunView._on_alert,
    "system": RunView._on_system,
    "run_end": RunView._on_run_end,
}
