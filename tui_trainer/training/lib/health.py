"""Diverging runs: non-finite steps and loss spikes, judged from the loss and grad norm all ranks agreed on.

* A step whose loss or global gradient norm is NaN/inf has its update skipped (``step.train_step`` decides
  that on every rank alike, before ``optimizer.step``) and raises a ``nonfinite`` alert. After
  ``optim.max_bad_steps`` such steps in a row the run stops, ``failed``, with a checkpoint of the last finite
  weights (the skipped updates never touched them).
* A finite loss far above its recent baseline raises a ``spike`` alert (training goes on). The baseline is
  robust to the spikes themselves: the median ``m`` of the last ``optim.spike_window`` finite losses, and the
  spread ``s = max(1.4826 × MAD, 1% of |m|)`` (1.4826 × MAD estimates a standard deviation; the floor keeps a
  flat plateau from calling noise a spike). A loss above ``m + optim.spike_threshold × s`` is a spike once the
  window holds at least ``MIN_BASELINE`` losses. Consecutive spiking steps make one alert, on the first.

Every rank sees the same agreed numbers, so every rank reaches the same verdict without talking.
Pure Python (no torch): the one-file trainer mirrors it, and tests drive it with plain floats.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

NONFINITE, SPIKE = "nonfinite", "spike"
MIN_BASELINE = 10       # finite losses needed before a spike can be called
MAD_TO_SIGMA = 1.4826   # MAD × this estimates the standard deviation of normally distributed values
MIN_RELATIVE_SPREAD = 0.01


class HealthMonitor:
    def __init__(self, max_bad_steps: int, spike_window: int, spike_threshold: float):
        self.max_bad_steps = max_bad_steps
        self.spike_threshold = spike_threshold
        self.spike_window = spike_window
        self._recent: deque[float] = deque(maxlen=max(spike_window, 1))
        self._bad_run: list[int] = []   # steps of the current run of non-finite steps
        self._spiking = False
        self.failure: str | None = None  # set once the run must stop

    @classmethod
    def from_config(cls, cfg) -> "HealthMonitor":
        o = cfg.optim
        return cls(o.max_bad_steps, o.spike_window, o.spike_threshold)

    def observe(self, step: int, loss: float, grad_norm: float) -> list[dict[str, Any]]:
        """Judge the step just trained (0-based ``step``); returns the payloads of the alerts it raises."""
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return [self._nonfinite(step, loss, grad_norm)]
        self._bad_run.clear()
        alerts = []
        baseline = self._baseline()
        spiking = baseline is not None and loss > baseline[0] + self.spike_threshold * baseline[1]
        if spiking and not self._spiking:
            median, spread = baseline  # type: ignore[misc]
            limit = median + self.spike_threshold * spread
            alerts.append({"step": step, "kind": SPIKE, "loss": loss, "grad_norm": grad_norm,
                           "baseline": median, "threshold": limit,
                           "message": f"loss spike at step {step}: {loss:.4g} against a recent median of "
                                      f"{median:.4g} (alert above {limit:.4g})"})
        self._spiking = spiking
        if self.spike_window > 0:
            self._recent.append(loss)
        return alerts

    def _baseline(self) -> tuple[float, float] | None:
        if self.spike_window <= 0 or len(self._recent) < MIN_BASELINE:
            return None
        median = statistics.median(self._recent)
        mad = statistics.median(abs(x - median) for x in self._recent)
        return median, max(MAD_TO_SIGMA * mad, MIN_RELATIVE_SPREAD * abs(median))

    def _nonfinite(self, step: int, loss: float, grad_norm: float) -> dict[str, Any]:
        self._bad_run.append(step)
        bad = len(self._bad_run)
        message = (f"step {step}: loss {loss}, gradient norm {grad_norm} — update skipped "
                   f"({bad} of {self.max_bad_steps} non-finite steps in a row allowed)")
        if bad >= self.max_bad_steps:
            first = self._bad_run[0]
            self.failure = (f"diverged at step {first}: {bad} steps in a row ({first}–{step}) had a "
                            f"non-finite loss or gradient norm; their updates were skipped and the "
                            f"checkpoint holds the weights from before step {first} — lower optim.max_lr or "
                            f"raise optim.warmup_steps, then resume")
        return {"step": step, "kind": NONFINITE, "loss": _json_number(loss),
                "grad_norm": _json_number(grad_norm), "bad_steps": bad, "message": message}


def _json_number(x: float) -> float | None:
    """NaN/inf as null: the alert is read by strict JSON readers too (the step event keeps the raw value)."""
    return x if math.isfinite(x) else None
