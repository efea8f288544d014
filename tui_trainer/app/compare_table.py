"""What sets compared runs apart: the config keys whose values differ, then each run's final and best
metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from tui_trainer.app.run_view import RunView

MISSING = "—"


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (lists and scalars are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def config_differences(configs: list[dict]) -> list[tuple[str, list[str]]]:
    """(dotted key, value per run) for every key not equal in all runs; a key a run lacks shows as —."""
    flats = [flatten(c or {}) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    rows = []
    for key in keys:
        values = [f.get(key, _Absent) for f in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, [MISSING if v is _Absent else _show(v) for v in values]))
    return rows


class _Absent:
    """Marks a key a run's config does not have (distinct from a value of None)."""


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def metrics(view: RunView) -> dict[str, str]:
    """Final and best figures of one run (best: lowest loss, highest HellaSwag)."""
    s = view.series

    def last(name: str) -> str:
        v = _finite(s[name].values())
        return f"{v[-1]:.4f}" if len(v) else MISSING

    def best(name: str, pick) -> str:
        v = _finite(s[name].values())
        return f"{pick(v):.4f}" if len(v) else MISSING

    steps = s["train_loss"].x("step")
    return {
        "steps": f"{int(steps[-1]) + 1:,}" if len(steps) else MISSING,
        "train loss (final)": last("train_loss"),
        "val loss (final)": last("val_loss"),
        "val loss (best)": best("val_loss", np.min),
        "HellaSwag (final)": last("hellaswag"),
        "HellaSwag (best)": best("hellaswag", np.max),
    }


def compare_table(views: list[RunView], colors: list[str]) -> Table:
    """Rows: differing config keys, then metrics; one column per run, headed in the run's chart colour."""
    table = Table(expand=True, box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("", style="dim", no_wrap=True, overflow="ellipsis")
    for view, color in zip(views, colors):
        table.add_column(Text(view.run_id, style=color), no_wrap=True, overflow="ellipsis")
    with_configs = [v.config for v in views]
    differences = config_differences(with_configs)
    if not differences:
        same = "same config" if all(with_configs) else "configs not read yet"
        table.add_row(Text(same, style="italic"), *["" for _ in views])
    for key, values in differences:
        table.add_row(key, *values)
    table.add_section()
    per_run = [metrics(v) for v in views]
    for name in per_run[0] if per_run else []:
        table.add_row(name, *[m[name] for m in per_run])
    return table
