"""`export --csv -o` never opens its output over an input: `-o <run>/events.jsonl` once truncated the log it
was exporting ("wrote 0 rows", rc 0, the log now a CSV header)."""

from __future__ import annotations

import csv
import os

import pytest

from tui_trainer.cli import main
from tui_trainer.runs import RunStore
from tui_trainer.runs.files import write_private

from event_rows import write_log


@pytest.fixture
def run_with_log(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create("exported")
    write_private(run.config_file, "")
    write_log(run.events_file, steps=5)
    return store, run


def export(store, run, output, capsys):
    rc = main(["export", run.id, "--csv", "-o", str(output), "--runs-root", str(store.root)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("inside", ["events.jsonl", "status.json", "new.csv", "logs/trainer.log",
                                    "checkpoints/x.csv"])
def test_output_inside_the_run_directory_is_refused(run_with_log, inside, capsys):
    store, run = run_with_log
    before = {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()}
    rc, err = export(store, run, run.dir / inside, capsys)
    assert rc == 1 and "inside run directory" in err and "Traceback" not in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()} == before


def test_output_in_another_run_directory_is_refused(run_with_log, capsys):
    store, run = run_with_log
    other = store.create("other")
    write_private(other.config_file, "")
    rc, err = export(store, run, other.dir / "metrics.csv", capsys)
    assert rc == 1 and str(other.dir) in err and not (other.dir / "metrics.csv").exists()


def test_a_hard_link_to_the_log_is_refused(run_with_log, tmp_path, capsys):
    store, run = run_with_log
    link = tmp_path / "events-link.jsonl"
    os.link(run.events_file, link)
    size = run.events_file.stat().st_size
    rc, err = export(store, run, link, capsys)
    assert rc == 1 and "event log" in err and run.events_file.stat().st_size == size


def test_a_symlink_into_the_run_is_refused(run_with_log, tmp_path, capsys):
    store, run = run_with_log
    link = tmp_path / "metrics.csv"
    link.symlink_to(run.events_file)
    size = run.events_file.stat().st_size
    rc, err = export(store, run, link, capsys)
    assert rc == 1 and run.events_file.stat().st_size == size


def test_export_writes_through_a_temp_file_and_replaces(run_with_log, tmp_path, capsys):
    store, run = run_with_log
    out = tmp_path / "metrics.csv"
    out.write_text("old contents\n")
    rc, err = export(store, run, out, capsys)
    assert rc == 0 and "wrote 6 rows" in err      # steps 0-4, then the validation at step 5
    rows = list(csv.DictReader(out.open()))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3", "4", "5"] and rows[5]["val_loss"] == "9.5"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.parametrize("where", ["missing-dir/metrics.csv", "a-directory"])
def test_unwritable_outputs_are_one_paragraph(run_with_log, tmp_path, where, capsys):
    store, run = run_with_log
    (tmp_path / "a-directory").mkdir()
    rc, err = export(store, run, tmp_path / where, capsys)
    assert rc == 1 and err.startswith("gpt-console: ") and "Traceback" not in err and err.count("\n") == 1
