"""Export a run's metrics as CSV: one row per logged step, with validation and HellaSwag on their step's row.

After a resume that re-ran steps, the newest value for a step wins (that is what the resumed run continued
from). Columns are stable so spreadsheets and pandas scripts keep working.
"""

from __future__ import annotations

import csv
from typing import TextIO

COLUMNS = ("step", "time", "loss", "lr", "grad_norm", "dt", "tok_per_s", "tokens", "mfu", "val_loss",
           "hellaswag_acc", "hellaswag_acc_norm", "hellaswag_correct_norm", "hellaswag_total", "launch")


def collect_rows(events) -> list[dict]:
    rows: dict[int, dict] = {}
    segment = 0
    for event in events:
        kind = event.get("type")
        if kind == "run_start":
            segment += 1
            continue
        step = event.get("step")
        if kind not in ("step", "val", "hellaswag") or not isinstance(step, int):
            continue
        row = rows.setdefault(step, {"step": step})
        row["launch"] = segment
        if kind == "step":
            row.update(time=event.get("t"), loss=event.get("loss"), lr=event.get("lr"),
                       grad_norm=event.get("grad_norm"), dt=event.get("dt"), tok_per_s=event.get("tok_per_s"),
                       tokens=event.get("tokens"), mfu=event.get("mfu"))
        elif kind == "val":
            row["val_loss"] = event.get("loss")
        else:
            row.update(hellaswag_acc=event.get("acc"), hellaswag_acc_norm=event.get("acc_norm"),
                       hellaswag_correct_norm=event.get("correct_norm"), hellaswag_total=event.get("total"))
    return [rows[s] for s in sorted(rows)]


def write_csv(run, out: TextIO) -> int:
    """Write the CSV for ``run`` to ``out``; returns the number of data rows."""
    rows = collect_rows(run.follower())
    writer = csv.DictWriter(out, fieldnames=COLUMNS, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return len(rows)
