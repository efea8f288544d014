"""``RunSummary``: the few numbers that describe a run, folded from its events one at a time.

    summary = RunSummary()
    for event in EventFollower(path):
        summary.apply(event)
    summary.step, summary.loss, summary.best_val, summary.eta_seconds()

Used by ``gpt-console runs`` (one row per run), the CLI's live progress line and the console's status bar.
Folding is O(1) per event and keeps O(1) state (the error list is capped), so replaying a long log is cheap.
Stdlib only. ``status`` here is only what the events say (``None`` until a run_end); whether the process is
alive is tui_trainer.runs' business (``Run.status()``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

MAX_ERRORS_KEPT = 20
MAX_ALERTS_KEPT = 20


@dataclass
class RunSummary:
    # lifecycle -------------------------------------------------------------------------------------------
    status: str | None = None         # run_end status of the newest segment: finished / stopped / failed
    end_reason: str = ""
    end_step: int | None = None
    started_at: float | None = None   # ``t`` of the first run_start
    segment_started_at: float | None = None  # ``t`` of the newest run_start (differs after a resume)
    last_event_at: float | None = None
    resumes: int = 0                  # run_start events after the first one
    resumed_from_step: int | None = None  # of the newest segment
    events: int = 0
    # what is being trained -------------------------------------------------------------------------------
    trainer: str = ""
    params: int | None = None
    world_size: int | None = None
    device: str = ""
    device_name: str = ""
    dtype: str = ""
    grad_accum_steps: int | None = None
    max_steps: int | None = None
    config: dict | None = None        # resolved config (from the newest run_start)
    # progress --------------------------------------------------------------------------------------------
    step: int | None = None           # newest completed step (0-based)
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    dt: float | None = None
    tok_per_s: float | None = None
    mfu: float | None = None
    tokens: int | None = None
    heartbeat_step: int | None = None
    # evaluations -----------------------------------------------------------------------------------------
    val_loss: float | None = None     # newest
    val_step: int | None = None
    best_val: float | None = None
    best_val_step: int | None = None
    hellaswag_acc: float | None = None
    hellaswag_acc_norm: float | None = None
    hellaswag_total: int | None = None
    hellaswag_step: int | None = None
    last_sample: dict | None = None   # the newest sample event
    last_checkpoint: dict | None = None
    # problems --------------------------------------------------------------------------------------------
    error_count: int = 0
    errors: list[str] = field(default_factory=list)  # newest MAX_ERRORS_KEPT error messages
    warnings: int = 0                 # log events with level warning/error
    alert_count: int = 0              # alert events (non-finite steps skipped, loss spikes), all segments
    alerts: list[str] = field(default_factory=list)  # newest MAX_ALERTS_KEPT alert messages
    # ETA anchors: the first step of the newest segment and when it completed
    _anchor_step: int | None = field(default=None, repr=False)
    _anchor_t: float | None = field(default=None, repr=False)
    _step_t: float | None = field(default=None, repr=False)

    # ---------------------------------------------------------------------------------------------- fold
    @classmethod
    def from_events(cls, events: Iterable[dict]) -> "RunSummary":
        summary = cls()
        for event in events:
            summary.apply(event)
        return summary

    def apply(self, event: dict) -> None:
        """Fold one decoded event in. Unknown types and missing fields are tolerated (old/new writers)."""
        self.events += 1
        t = _num(event.get("t"))
        if t is not None:
            self.last_event_at = t
        handler = _HANDLERS.get(event.get("type", ""))
        if handler is not None:
            handler(self, event, t)

    def _run_start(self, e: dict, t: float | None) -> None:
        if self.started_at is None:
            self.started_at = t
        else:
            self.resumes += 1
        self.segment_started_at = t
        self.status, self.end_reason, self.end_step = None, "", None
        self.resumed_from_step = e.get("resumed_from_step")
        for name in ("trainer", "device", "device_name", "dtype"):
            if isinstance(e.get(name), str):
                setattr(self, name, e[name])
        for name in ("params", "world_size", "grad_accum_steps", "max_steps"):
            if isinstance(e.get(name), int):
                setattr(self, name, e[name])
        if isinstance(e.get("config"), dict):
            self.config = e["config"]
        self._anchor_step = self._anchor_t = None

    def _step(self, e: dict, t: float | None) -> None:
        step = e.get("step")
        if not isinstance(step, int):
            return
        self.step = step
        self.loss = _num(e.get("loss"))
        self.lr = _num(e.get("lr"))
        self.grad_norm = _num(e.get("grad_norm"))
        self.dt = _num(e.get("dt"))
        self.tok_per_s = _num(e.get("tok_per_s"))
        self.mfu = _num(e.get("mfu"))
        if isinstance(e.get("tokens"), int):
            self.tokens = e["tokens"]
        if self._anchor_step is None:
            self._anchor_step, self._anchor_t = step, t
        self._step_t = t

    def _val(self, e: dict, t: float | None) -> None:
        loss = _num(e.get("loss"))
        if loss is None:
            return
        self.val_loss, self.val_step = loss, e.get("step")
        if loss == loss and (self.best_val is None or loss < self.best_val):  # NaN never becomes the best
            self.best_val, self.best_val_step = loss, e.get("step")

    def _hellaswag(self, e: dict, t: float | None) -> None:
        self.hellaswag_acc = _num(e.get("acc"))
        self.hellaswag_acc_norm = _num(e.get("acc_norm"))
        self.hellaswag_total = e.get("total") if isinstance(e.get("total"), int) else None
        self.hellaswag_step = e.get("step")

    def _sample(self, e: dict, t: float | None) -> None:
        self.last_sample = e

    def _checkpoint(self, e: dict, t: float | None) -> None:
        self.last_checkpoint = e

    def _heartbeat(self, e: dict, t: float | None) -> None:
        if isinstance(e.get("step"), int):
            self.heartbeat_step = e["step"]

    def _log(self, e: dict, t: float | None) -> None:
        if str(e.get("level", "")).lower() in ("warning", "warn", "error"):
            self.warnings += 1

    def _error(self, e: dict, t: float | None) -> None:
        self.error_count += 1
        self.errors.append(str(e.get("message", "")))
        del self.errors[:-MAX_ERRORS_KEPT]

    def _alert(self, e: dict, t: float | None) -> None:
        self.alert_count += 1
        self.alerts.append(str(e.get("message", "")) or f"{e.get('kind')} alert at step {e.get('step')}")
        del self.alerts[:-MAX_ALERTS_KEPT]

    def _run_end(self, e: dict, t: float | None) -> None:
        self.status = str(e.get("status", "")) or None
        self.end_reason = str(e.get("reason", ""))
        self.end_step = e.get("step") if isinstance(e.get("step"), int) else None

    # ------------------------------------------------------------------------------------------- derived
    @property
    def ended(self) -> bool:
        """The newest segment wrote its run_end."""
        return self.status is not None

    @property
    def last_error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    @property
    def progress(self) -> float | None:
        """Fraction of max_steps completed, in [0, 1]."""
        if not self.max_steps or self.step is None:
            return None
        return min(1.0, (self.step + 1) / self.max_steps)

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Wall-clock seconds to max_steps at this segment's pace so far (evaluations included), or None."""
        if self.ended or self.max_steps is None or self.step is None:
            return None
        remaining = self.max_steps - 1 - self.step
        if remaining <= 0:
            return 0.0
        per_step = None
        if self._anchor_step is not None and self._anchor_t is not None and self._step_t is not None \
                and self.step > self._anchor_step:
            per_step = (self._step_t - self._anchor_t) / (self.step - self._anchor_step)
        elif self.dt:
            per_step = self.dt
        if per_step is None:
            return None
        eta = remaining * per_step
        if now is not None and self._step_t is not None:
            eta -= max(0.0, now - self._step_t)  # time already spent on the step in flight
        return max(0.0, eta)

    def as_dict(self) -> dict[str, Any]:
        """Public fields as plain JSON-able values (for status.json and machine-readable output)."""
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "config"}
        out["ended"] = self.ended
        out["eta_seconds"] = self.eta_seconds(time.time())
        return out


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


_HANDLERS = {
    "run_start": RunSummary._run_start, "step": RunSummary._step, "val": RunSummary._val,
    "hellaswag": RunSummary._hellaswag, "sample": RunSummary._sample, "checkpoint": RunSummary._checkpoint,
    "heartbeat": RunSummary._heartbeat, "log": RunSummary._log, "error": RunSummary._error,
    "run_end": RunSummary._run_end, "alert": RunSummary._alert,
}
