"""RunStore and Run on the file system: ids, permissions, lookup by prefix, refusal to delete a live run."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from tui_trainer.runs import AmbiguousRun, RunIsRunning, RunNotFound, RunStore, procs
from tui_trainer.runs.files import tail_lines, write_json, write_private
from tui_trainer.runs.ids import candidates, id_time, run_id, slug


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ids_are_readable_sortable_and_unique_within_a_second():
    now = time.mktime((2026, 11, 23, 22, 15, 0, 0, 0, -1))
    assert run_id("default", now) == "20261123-221500-default"
    assert slug("My Config (v2)") == "my-config-v2"
    assert slug("  ") == "run"
    first = list(zip(range(3), candidates("x", now)))
    assert [c for _, c in first] == ["20261123-221500-x", "20261123-221500-x-2", "20261123-221500-x-3"]
    assert id_time("20261123-221500-default") == now
    assert id_time("manual-default") is None
    assert run_id("a", now) < run_id("a", now + 1) < run_id("a", now + 86400)


def test_create_makes_private_unique_dirs(tmp_path):
    store = RunStore(tmp_path / "runs")
    a, b = store.create("default"), store.create("default")
    assert a.id != b.id and a.id.endswith("-default") and b.id.startswith(a.id)
    for run in (a, b):
        assert mode(run.dir) == 0o700 and mode(run.dir / "logs") == 0o700
    assert mode(store.root) == 0o700
    write_private(a.config_file, "[model]\n")
    assert mode(a.config_file) == 0o600


def test_private_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "status.json"
    write_json(target, {"state": "finished"})
    write_json(target, {"state": "stopped"})
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert mode(target) == 0o600


def test_list_and_get_by_prefix(tmp_path):
    store = RunStore(tmp_path)
    runs = []
    for name in ("alpha", "beta", "alpha-two"):
        run = store.create(name)
        write_private(run.config_file, "")
        runs.append(run)
    (tmp_path / "not-a-run").mkdir()
    listed = store.list()
    assert {r.id for r in listed} == {r.id for r in runs}
    assert store.get(runs[1].id) == runs[1]
    assert store.get(runs[1].id[:-2]) == runs[1]          # unique prefix
    assert store.get("beta") == runs[1]                   # unique substring as a last resort
    with pytest.raises(AmbiguousRun):
        store.get("alpha")
    with pytest.raises(RunNotFound, match="gpt-console runs"):
        store.get("nope")


def test_delete_refuses_a_running_run_then_deletes(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("live")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_json(run.launch_file, {"launch": 1, "supervisor": procs.stamp(sleeper.pid), "workers": []})
        assert run.status().state == "running"
        with pytest.raises(RunIsRunning, match="stop it first"):
            store.delete(run.id)
        assert run.dir.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run.status().state == "lost"
    store.delete(run.id)
    assert not run.dir.exists()


def test_checkpoints_only_complete_ones_in_step_order(tmp_path):
    run = RunStore(tmp_path).create("c")
    for name in ("step-00000010", "step-00000002", ".tmp-step-00000020", "step-00000020.partial"):
        (run.checkpoint_dir / name).mkdir(parents=True)
    assert [p.name for p in run.checkpoints()] == ["step-00000002", "step-00000010"]


def test_tail_lines(tmp_path):
    path = tmp_path / "log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert tail_lines(path, 3) == ["line 997", "line 998", "line 999"]
    assert tail_lines(path, 2, max_bytes=30) == ["line 998", "line 999"]
    assert tail_lines(tmp_path / "missing", 3) == []
