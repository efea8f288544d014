"""Metric series for the charts: append-only columns, resume stitching, EMA smoothing and min/max thinning.

A series keeps every point it is given (a 1M-step run is 1M points, 40 MB); what reaches the canvas is thinned to
the widget's width. Thinning is per bucket min *and* max, so a one-step loss spike survives at any zoom, and
non-finite values (NaN/inf from a diverging run) become gaps instead of poisoning the axis range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np

from tui_trainer.app.chart_names import X_AXES

DEFAULT_EMA_WEIGHT = 0.9


def debiased_ema(values: np.ndarray, weight: float, acc: float = 0.0, count: int = 0) -> tuple[np.ndarray, float, int]:
    """TensorBoard's debiased EMA continued from state (acc, count); returns (ema, acc, count).

    Non-finite values are skipped (NaN in the output, state unchanged). The recurrence
    acc_j = w·acc_(j-1) + (1-w)·v_j is evaluated in numpy, blockwise: inside a block of B points a cumulative
    sum of v_k·w^-k, with B chosen so that w^B ≈ 1e-6. That keeps w^-k ≤ 1e6 (block sums stay precise) and
    makes a block's carry into the next-but-three negligible, so the carries are a few shifted array adds
    too. A million points take milliseconds instead of a Python loop per point.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return np.empty(0), acc, count
    if not 0.0 < weight < 1.0 or not np.isfinite(values).all():
        return _ema_loop(values, weight, acc, count)
    w = weight
    b = max(1, min(n, math.ceil(math.log(1e-6) / math.log(w))))
    blocks = -(-n // b)
    padded = np.zeros(blocks * b)
    padded[:n] = values
    padded = padded.reshape(blocks, b)
    r = np.arange(1, b + 1, dtype=np.float64)
    w_r = w ** r
    local = np.cumsum(padded * w ** -r, axis=1) * w_r        # Σ_k≤r w^(r-k) v_k within each block
    # acc at the end of block i: Σ_j w^(jB)·(1-w)·local_end(i-j) + w^((i+1)B)·acc; terms beyond j = 3 are
    # below 1e-24 of the first and dropped (exact when there are at most four blocks).
    w_b = w ** b
    e = (1.0 - w) * local[:, -1]
    ends = e.copy()
    for j in range(1, min(4, blocks)):
        ends[j:] += w_b ** j * e[:-j]
    ends += w_b ** np.arange(1, blocks + 1) * acc
    starts = np.concatenate(([acc], ends[:-1]))
    accs = (w_r[None, :] * starts[:, None] + (1.0 - w) * local).reshape(-1)[:n]
    counts = count + np.arange(1, n + 1, dtype=np.float64)
    return accs / (1.0 - w ** counts), float(accs[-1]), count + n


def _ema_loop(values: np.ndarray, weight: float, acc: float, count: int) -> tuple[np.ndarray, float, int]:
    out = []
    isfinite = math.isfinite
    for v in values.tolist():
        if isfinite(v):
            acc = acc * weight + (1.0 - weight) * v
            count += 1
            out.append(acc / (1.0 - weight ** count))
        else:
            out.append(math.nan)
    return np.array(out, dtype=np.float64), acc, count


class _Column:
    """A float64 array that grows by doubling, so appends are amortised O(1) and reads are zero-copy views."""

    __slots__ = ("_data", "_size")

    def __init__(self, capacity: int = 256) -> None:
        self._data = np.empty(capacity, dtype=np.float64)
        self._size = 0

    def append(self, value: float) -> None:
        if self._size == len(self._data):
            grown = np.empty(2 * len(self._data), dtype=np.float64)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size] = value
        self._size += 1

    def extend(self, values: np.ndarray) -> None:
        need = self._size + len(values)
        if need > len(self._data):
            grown = np.empty(max(need, 2 * len(self._data)), dtype=np.float64)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size:need] = values
        self._size = need

    def truncate(self, size: int) -> None:
        self._size = max(0, min(size, self._size))

    def view(self) -> np.ndarray:
        return self._data[: self._size]

    def __len__(self) -> int:
        return self._size


class Series:
    """One metric over a run: value per point with three x coordinates (step, tokens, wall seconds).

    Points must arrive in step order. A point whose step is not after the last one means the run was resumed
    from an earlier checkpoint: the points it supersedes are dropped so the line continues from the resume
    step ("stitching") instead of doubling back.
    """

    def __init__(self, name: str, *, ema_weight: float = DEFAULT_EMA_WEIGHT) -> None:
        self.name = name
        self.ema_weight = ema_weight
        self._cols = {axis: _Column() for axis in X_AXES}
        self._value = _Column()
        self._ema = _Column()
        self._ema_acc = 0.0     # TensorBoard-style debiased EMA: running sum and count of finite values
        self._ema_count = 0
        self.nonfinite = 0      # NaN/inf values seen (shown as gaps; the chart says how many)
        self.version = 0        # bumps on every change, so a chart can cache its last frame

    def __len__(self) -> int:
        return len(self._value)

    def append(self, step: float, value: float, *, tokens: float = math.nan, wall: float = math.nan) -> None:
        if len(self) and step <= self._cols["step"].view()[-1]:
            self.truncate_from_step(step)
        self._cols["step"].append(step)
        self._cols["tokens"].append(tokens)
        self._cols["wall"].append(wall)
        self._value.append(value)
        if math.isfinite(value):
            w = self.ema_weight
            self._ema_acc = self._ema_acc * w + (1.0 - w) * value
            self._ema_count += 1
            self._ema.append(self._ema_acc / (1.0 - w ** self._ema_count))
        else:
            self.nonfinite += 1
            self._ema.append(math.nan)
        self.version += 1

    def extend(self, steps, values, tokens=None, wall=None) -> None:
        """Append many points at once (a replay folds a million steps this way, not one call per point).

        Same result as calling ``append`` for each; falls back to it when the steps are not increasing.
        """
        steps = np.asarray(steps, dtype=np.float64)
        n = len(steps)
        if n == 0:
            return
        values = np.asarray(values, dtype=np.float64)
        tokens = np.full(n, math.nan) if tokens is None else np.asarray(tokens, dtype=np.float64)
        wall = np.full(n, math.nan) if wall is None else np.asarray(wall, dtype=np.float64)
        if n > 1 and not (np.diff(steps) > 0).all():
            for i in range(n):
                self.append(steps[i], values[i], tokens=tokens[i], wall=wall[i])
            return
        if len(self) and steps[0] <= self._cols["step"].view()[-1]:
            self.truncate_from_step(steps[0])
        self._cols["step"].extend(steps)
        self._cols["tokens"].extend(tokens)
        self._cols["wall"].extend(wall)
        self._value.extend(values)
        ema, self._ema_acc, self._ema_count = debiased_ema(values, self.ema_weight, self._ema_acc,
                                                           self._ema_count)
        self._ema.extend(ema)
        self.nonfinite += int(n - np.count_nonzero(np.isfinite(values)))
        self.version += 1

    def truncate_from_step(self, step: float) -> None:
        """Drop every point at or after ``step`` (a resume re-runs them)."""
        steps = self._cols["step"].view()
        keep = int(np.searchsorted(steps, step, side="left"))
        if keep == len(self):
            return
        dropped = self._value.view()[keep:]
        self.nonfinite -= int(np.count_nonzero(~np.isfinite(dropped)))
        for col in (*self._cols.values(), self._value, self._ema):
            col.truncate(keep)
        self._restore_ema_state()
        self.version += 1

    def set_ema_weight(self, weight: float) -> None:
        """Recompute the smoothed column for a new weight (a one-off O(n) pass)."""
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"EMA weight must be in [0, 1), got {weight}")
        values = self._value.view().copy()
        self.ema_weight = weight
        ema, self._ema_acc, self._ema_count = debiased_ema(values, weight)
        self._ema = _Column(max(256, len(values)))
        self._ema.extend(ema)
        self.version += 1

    def _restore_ema_state(self) -> None:
        values = self._value.view()
        self._ema_count = int(np.count_nonzero(np.isfinite(values)))
        if self._ema_count == 0:
            self._ema_acc = 0.0
            return
        emas = self._ema.view()
        last = emas[np.isfinite(emas)][-1]
        self._ema_acc = float(last) * (1.0 - self.ema_weight ** self._ema_count)

    # ----------------------------------------------------------------------------------------- reading
    def x(self, axis: str = "step") -> np.ndarray:
        return self._cols[axis].view()

    def values(self) -> np.ndarray:
        return self._value.view()

    def ema(self) -> np.ndarray:
        return self._ema.view()

    def last(self) -> float | None:
        return float(self._value.view()[-1]) if len(self) else None

    def last_step(self) -> float | None:
        return float(self._cols["step"].view()[-1]) if len(self) else None


@dataclass(frozen=True)
class Thinned:
    """At most ~2 points per bucket; NaN in ``y`` marks a gap."""
    x: np.ndarray
    y: np.ndarray

    def segment_arrays(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Runs of consecutive finite points (a gap separates runs)."""
        finite = np.isfinite(self.y) & np.isfinite(self.x)
        if not finite.any():
            return []
        if finite.all():
            return [(self.x, self.y)]
        # Split where finiteness changes; keep only the finite pieces.
        edges = np.flatnonzero(np.diff(finite.astype(np.int8))) + 1
        return [(xs, ys) for xs, ys, ok in zip(np.split(self.x, edges), np.split(self.y, edges),
                                                np.split(finite, edges)) if ok[0]]

    def segments(self) -> list[tuple[list[float], list[float]]]:
        """The same runs as plain lists."""
        return [(xs.tolist(), ys.tolist()) for xs, ys in self.segment_arrays()]


def thin(x: np.ndarray, y: np.ndarray, buckets: int, *, finite_x: bool = False, no_inf: bool = False) -> Thinned:
    """Reduce (x, y) to per-bucket min and max over ``buckets`` equal slices of the x range.

    ``x`` must be non-decreasing (Series guarantees it). Non-finite ``y`` become NaN; a bucket holding only
    non-finite values becomes a gap, so a stretch of NaN losses shows as a break in the line. O(n) in numpy,
    no Python loop over points: 1M points thin in a few milliseconds. ``finite_x`` / ``no_inf`` let a caller
    that knows its data (steps are always finite; a series with no non-finite values) skip a pass each.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not finite_x:
        ok = np.isfinite(x)
        if not ok.all():  # points without this x coordinate (e.g. no token count) cannot be placed
            x, y = x[ok], y[ok]
    if not no_inf:
        y = np.where(np.isfinite(y), y, np.nan)
    n = len(x)
    buckets = max(1, int(buckets))
    if n <= 2 * buckets or x[-1] <= x[0]:
        return Thinned(x, y)
    edges = np.linspace(x[0], x[-1], buckets + 1)
    starts = np.searchsorted(x, edges[:-1], side="left")
    starts = np.unique(starts)  # empty buckets collapse onto their neighbour's start
    ends = np.append(starts[1:], n)
    # fmin/fmax skip NaN unless the whole bucket is NaN, which then yields NaN: a gap at this resolution.
    # (A lone NaN among finite values in one bucket is below the resolution; Series.nonfinite counts it.)
    lows = np.fmin.reduceat(y, starts)
    highs = np.fmax.reduceat(y, starts)
    centers = (x[starts] + x[ends - 1]) / 2.0
    xs = np.repeat(centers, 2)
    ys = np.empty(2 * len(starts), dtype=np.float64)
    ys[0::2] = lows
    ys[1::2] = highs
    return Thinned(xs, ys)


def thin_mean(x: np.ndarray, y: np.ndarray, buckets: int, *, no_nan: bool = False) -> Thinned:
    """Reduce (x, y) to one point per bucket, the mean of its finite values (NaN for a bucket without any).

    For a line that is already a trend (an EMA): its min/max band would draw the noise the EMA is there to
    remove, while the mean is the trend at the canvas's resolution. ``x`` finite and non-decreasing."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    buckets = max(1, int(buckets))
    if n <= buckets or x[-1] <= x[0]:
        return Thinned(x, y)
    edges = np.linspace(x[0], x[-1], buckets + 1)
    starts = np.unique(np.searchsorted(x, edges[:-1], side="left"))
    ends = np.append(starts[1:], n)
    if no_nan:  # the caller knows: skip two passes over the whole column
        sums, counts = np.add.reduceat(y, starts), ends - starts
    else:
        finite = np.isfinite(y)
        sums = np.add.reduceat(np.where(finite, y, 0.0), starts)
        counts = np.add.reduceat(finite.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Thinned((x[starts] + x[ends - 1]) / 2.0, means)


def positive_only(y: np.ndarray) -> np.ndarray:
    """For a log axis: values <= 0 cannot be drawn and become gaps."""
    return np.where(y > 0, y, np.nan)


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Binomial 95 % interval of a proportion (Wilson score): honest at 100 examples and near 0 or 1.

    A HellaSwag evaluation of 100–200 examples moves by several points from noise alone; the chart draws this
    interval under each point so a change inside it does not read as a trend."""
    if total <= 0:
        return math.nan, math.nan
    p = min(1.0, max(0.0, successes / total))
    z2 = z * z
    center = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return max(0.0, center - half), min(1.0, center + half)
