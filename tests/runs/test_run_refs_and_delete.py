"""Run references are names of this root's runs, never paths: `delete .. --yes` once emptied the user's
working directory and `delete . --yes` the whole runs root. A delete removes one run dir, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tui_trainer.cli import main
from tui_trainer.runs import RunError, RunIsRunning, RunNotFound, RunStore, procs
from tui_trainer.runs.files import write_json, write_private

HOSTILE_REFS = [".", "..", "./", "../", "a/b", "../outside", "", "   ", "x\0y", ".hidden"]


@pytest.fixture
def workdir(tmp_path):
    """A user's working directory: their files, a sibling folder, and the default runs root beside them."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("years of work")
    (tmp_path / "config.toml").write_text("[model]\n")   # makes the parent look like a run directory
    (tmp_path / "events.jsonl").write_text("")
    store = RunStore(tmp_path / "runs")
    run = store.create("kept")
    write_private(run.config_file, "")
    (tmp_path / "runs" / "config.toml").write_text("")   # and the root itself
    return tmp_path, store, run


def everything(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("ref", HOSTILE_REFS + ["ABSOLUTE"])
def test_hostile_refs_are_refused_and_nothing_is_deleted(workdir, ref, capsys):
    tmp_path, store, run = workdir
    ref = str(tmp_path / "notes") if ref == "ABSOLUTE" else ref
    before = everything(tmp_path)
    with pytest.raises(RunNotFound):
        store.get(ref)
    assert main(["delete", ref, "--yes", "--runs-root", str(store.root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gpt-console: ") and "Traceback" not in err and err.count("\n") == 1
    assert everything(tmp_path) == before


def test_status_of_dot_does_not_report_the_root_as_a_run(workdir, capsys):
    tmp_path, store, run = workdir
    assert main(["status", ".", "--runs-root", str(store.root)]) == 1
    err = capsys.readouterr().err
    assert "not a run id" in err and "created" not in err


def test_symlink_out_of_the_root_is_not_a_run(workdir, capsys):
    tmp_path, store, run = workdir
    os.symlink(tmp_path, store.root / "20260101-000000-link")       # points at the user's directory
    assert [r.id for r in store.list()] == [run.id]
    with pytest.raises(RunNotFound):
        store.get("20260101-000000-link")
    assert main(["delete", "20260101-000000-link", "--yes", "--runs-root", str(store.root)]) == 1
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "years of work"


def test_delete_does_not_follow_a_symlink_inside_the_run(workdir):
    tmp_path, store, run = workdir
    os.symlink(tmp_path / "notes", run.dir / "checkpoints")
    store.delete(run.id)
    assert not run.dir.exists() and (tmp_path / "notes" / "thesis.txt").read_text() == "years of work"


def test_delete_removes_exactly_one_run(workdir):
    tmp_path, store, run = workdir
    other = store.create("other")
    write_private(other.config_file, "")
    (run.dir / "checkpoints" / "step-00000002").mkdir(parents=True)
    (run.dir / "checkpoints" / "step-00000002" / "checkpoint.pt").write_bytes(b"x")
    before = [p for p in everything(tmp_path) if not p.startswith(f"runs/{run.id}")]
    store.delete(run.id)
    assert everything(tmp_path) == before
    assert [r.id for r in store.list()] == [other.id]


def test_delete_keeps_a_run_dir_holding_files_gpt_console_did_not_make(workdir):
    tmp_path, store, run = workdir
    (run.dir / "my-analysis.ipynb").write_text("{}")
    with pytest.raises(RunError, match="my-analysis.ipynb"):
        store.delete(run.id)
    assert (run.dir / "my-analysis.ipynb").exists() and run.config_file.exists()


def test_delete_refuses_while_the_launch_lock_is_held(workdir):
    """A launch or resume in progress (it holds the lock before the run shows as running)."""
    tmp_path, store, run = workdir
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"),
        str(run.dir / "launch.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunIsRunning, match="launching or supervising"):
            store.delete(run.id)
        assert run.config_file.exists()
    finally:
        holder.kill()
        holder.wait()
    store.delete(run.id)
    assert not run.dir.exists()


def test_delete_refuses_a_running_run(workdir):
    tmp_path, store, run = workdir
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_json(run.launch_file, {"launch": 1, "supervisor": procs.stamp(sleeper.pid), "workers": []})
        with pytest.raises(RunIsRunning, match="stop it first"):
            store.delete(run.id)
        assert run.config_file.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("verb", [["run", "configs/default.toml", "--detach"], ["delete", "x", "--yes"],
                                  ["status", "x"], ["export", "x", "--csv"]])
def test_an_unusable_runs_root_is_one_paragraph(tmp_path, verb, capsys):
    (tmp_path / "a-file").write_text("")
    rc = main([*verb, "--runs-root", str(tmp_path / "a-file" / "runs")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("gpt-console: ") and "Traceback" not in err, err
    assert err.count("\n") == 1, err
