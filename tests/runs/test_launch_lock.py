"""One live launch per run directory: several `gpt-console resume` at once start exactly one trainer (they
once started one each, every step twice in one event log), and the others say why they did not."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tui_trainer.runs import RunIsRunning, RunStore, procs
from tui_trainer.runs.files import write_json, write_private
from tui_trainer.runs.launch_lock import is_locked

from runs_helpers import wait_final, wait_for, wait_for_event

RACERS = 4


def launches_in(run) -> list[int]:
    """Pids of torchrun processes (and supervisors) working on ``run``'s directory, whoever started them."""
    found = []
    for stat in procs.all_stats():
        cmd = procs.cmdline(stat.pid)
        kinds = ("torch.distributed.run", "tui_trainer.runs.loopback_torchrun", "tui_trainer.runs.supervisor")
        if str(run.dir) in " ".join(cmd) and any(kind in cmd for kind in kinds):
            found.append(stat.pid)
    return found


@pytest.mark.slow
def test_concurrent_resumes_start_exactly_one_trainer(tmp_path, tiny_config):
    root = tmp_path / "runs"
    run = RunStore(root).launch(config_path=tiny_config(2))
    assert wait_final(run, 300).state == "finished" and run.checkpoints()
    assert not is_locked(run.dir)  # the supervisor let go of the lock when it ended
    run.config_file.write_text(run.config_file.read_text().replace("max_steps = 2", "max_steps = 100000"))

    racers = [subprocess.Popen([sys.executable, "-m", "tui_trainer.cli", "resume", run.id, "--runs-root",
                                str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL) for _ in range(RACERS)]
    try:
        results = [(p.wait(180), p.stdout.read(), p.stderr.read()) for p in racers]
        assert sorted(rc for rc, _, _ in results) == [0] + [1] * (RACERS - 1), results
        for rc, out, err in results:
            if rc:
                assert err.startswith("gpt-console: ") and "Traceback" not in err, err
                assert "launching or supervising" in err or "still running" in err, err
        info = run.launch_info()
        assert info["launch"] == 2 and len(info["history"]) == 1
        wait_for(lambda: len((run.launch_info() or {}).get("workers") or []) == 2, 120, "both ranks")
        wait_for_event(run, lambda e: e["type"] == "step" and e["step"] >= 3, 240, "steps after the resume")
        assert len(launches_in(run)) == 2          # one supervisor, one torchrun
        assert is_locked(run.dir)
        steps = [e["step"] for e in run.follower() if e["type"] == "step"]
        assert len(steps) == len(set(steps)), "a step was trained twice"
    finally:
        for p in racers:
            if p.poll() is None:
                p.kill()
        run.stop(timeout=60)
    deadline = time.monotonic() + 30
    while launches_in(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not launches_in(run)


@pytest.fixture
def locked_run(tmp_path):
    """A resumable-looking run whose launch lock another process holds (a launch or resume under way)."""
    run = RunStore(tmp_path / "runs").create("locked")
    write_private(run.config_file, "")
    (run.checkpoint_dir / "step-00000002").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"),
        str(run.dir / "launch.lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    yield run
    holder.kill()
    holder.wait()


def test_resume_is_refused_while_another_process_holds_the_lock(locked_run):
    """The console's `r` calls Run.resume(), the same path as the CLI's resume."""
    with pytest.raises(RunIsRunning, match="launching or supervising"):
        locked_run.resume()
    assert locked_run.launch_info() is None            # nothing was started or written


def test_a_second_supervisor_for_the_same_run_refuses_to_start(locked_run):
    write_json(locked_run.launch_file, {"launch": 1, "argv": [sys.executable, "-c", "open('started', 'w')"],
                                        "cwd": str(locked_run.dir), "workers": []})
    r = subprocess.run([sys.executable, "-m", "tui_trainer.runs.supervisor", str(locked_run.dir)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "launching or supervising" in r.stderr and "Traceback" not in r.stderr
    assert not (locked_run.dir / "started").exists()
    assert json.loads(locked_run.launch_file.read_text())["launch"] == 1
