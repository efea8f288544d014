"""A running run whose directory is deleted (rm -rf under it) ends, and nothing of it comes back under the
runs root: no checkpoint, no status.json, no launch.json. It once came back as 84 MB nobody listed."""

from __future__ import annotations

import shutil
import time

import pytest

from tui_trainer.runs import RunStore, procs

from runs_helpers import wait_for, wait_for_event

pytestmark = pytest.mark.slow


def both_ranks(run) -> dict | None:
    info = run.launch_info() or {}
    return info if len(info.get("workers") or []) == 2 else None


def test_deleted_running_run_stops_without_writing_back(tmp_path, tiny_config):
    root = tmp_path / "runs"
    run = RunStore(root).launch(config_path=tiny_config(100000))
    info = wait_for(lambda: both_ranks(run), 120, "both ranks")
    launch = [info["supervisor"], info["torchrun"], *info["workers"]]
    try:
        wait_for_event(run, lambda e: e["type"] == "step" and e["step"] >= 1, 240, "training")
        shutil.rmtree(run.dir)
        wait_for(lambda: not any(procs.is_alive(e) for e in launch), 120, "the launch's processes to end")
    finally:
        for entry in launch:
            procs.kill_group(entry)
    time.sleep(0.5)
    assert list(root.iterdir()) == []
