"""Axis ticks at round numbers (1, 2, 5 × 10^k) and labels short enough for a terminal margin."""

from __future__ import annotations

import math


def nice_step(span: float, max_ticks: int) -> float:
    raw = span / max(1, max_ticks)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def linear_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Round values inside [lo, hi], at most about ``max_ticks`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    step = nice_step(hi - lo, max_ticks)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9 and len(ticks) <= 2 * max_ticks:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value = first + len(ticks) * step
    return ticks


def log_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Ticks for a log axis, given the log10 range [lo, hi]; returns log10 values."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    decades = list(range(math.floor(lo), math.ceil(hi) + 1))
    ticks = [float(d) for d in decades if lo - 1e-9 <= d <= hi + 1e-9]
    if len(ticks) < 3:  # less than two decades: 2× and 5× in between too
        ticks = sorted({t for d in decades for m in (1, 2, 5)
                        for t in [d + math.log10(m)] if lo - 1e-9 <= t <= hi + 1e-9})
    if len(ticks) < 2:
        return linear_ticks(lo, hi, max_ticks)
    while len(ticks) > max_ticks:
        ticks = ticks[::2]
    return ticks


def format_ticks(values: list[float]) -> list[str]:
    """Labels with just enough decimals to tell neighbours apart; compact units for big numbers."""
    if not values:
        return []
    biggest = max(abs(v) for v in values)
    if biggest >= 1e4:
        for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
            if biggest >= div:
                return _decimals([v / div for v in values], unit)
    if 0 < biggest < 1e-3:
        return [f"{v:.1e}" for v in values]
    return _decimals(values, "")


def format_log_ticks(values: list[float]) -> list[str]:
    """Labels for a log axis (values are 1, 2 or 5 × 10^k): plain where short, 1e-4 style otherwise."""
    return [f"{v:g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
            for v in values]


def _decimals(values: list[float], unit: str) -> list[str]:
    step = min((abs(b - a) for a, b in zip(values, values[1:]) if b != a), default=abs(values[0]) or 1.0)
    decimals = max(0, min(6, -math.floor(math.log10(step)) + (0 if _is_round(step) else 1))) if step else 0
    return [f"{v:.{decimals}f}{unit}" for v in values]


def _is_round(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return abs(mantissa - round(mantissa)) < 1e-9
