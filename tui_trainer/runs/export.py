"""Export a run's metrics as CSV: one row per logged step, with validation and HellaSwag on their step's row.

After a resume that re-ran steps, the newest value for a step wins (that is what the resumed run continued
from). Columns are stable so spreadsheets and pandas scripts keep working.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import TextIO

from tui_trainer.runs.errors import RunError

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


def export_csv_file(run, output: str | os.PathLike, runs_root: str | os.PathLike) -> int:
    """Write the CSV to ``output`` through a temp file renamed over it; returns the number of data rows.

    The output is never opened before the log is read (``-o <run>/events.jsonl`` once truncated the log it
    was about to export), and a path inside a run directory is refused: those files belong to the run.
    """
    target = Path(output)
    check_export_target(target, run, runs_root)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise RunError(f"cannot write {target}: {e.strerror} — choose a directory you can write to"
                       ) from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            rows = write_csv(run, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise RunError(f"cannot write {target}: {e.strerror or e} — nothing was written") from None
        raise
    return rows


def check_export_target(target: Path, run, runs_root: str | os.PathLike) -> None:
    """RunError unless ``target`` is a file path outside every run directory of ``runs_root``."""
    parent = target.parent
    resolved = target.resolve() if target.is_symlink() else parent.resolve() / target.name
    protected = {Path(run.dir).resolve()}
    root = Path(runs_root).resolve()
    if resolved.is_relative_to(root):
        parts = resolved.relative_to(root).parts
        if len(parts) > 1:  # inside some directory of the runs root: that run's files
            protected.add(root / parts[0])
    for run_dir in protected:
        if resolved.is_relative_to(run_dir):
            raise RunError(f"refusing to write {target}: it is inside run directory {run_dir}, whose files "
                           "belong to the run — choose a path outside it, e.g. -o metrics.csv")
    if not parent.is_dir():
        raise RunError(f"cannot write {target}: the directory {parent} does not exist — create it or "
                       "choose another -o path")
    if target.is_dir():
        raise RunError(f"cannot write {target}: it is a directory — give a file name, "
                       f"e.g. {target / 'metrics.csv'}")
    try:
        if resolved.exists() and os.path.samefile(resolved, run.events_file):
            raise RunError(f"refusing to write {target}: it is the event log being exported — "
                           "choose another path")
    except OSError:
        pass  # cannot be compared (e.g. unreadable): the write below reports its own error
