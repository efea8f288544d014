"""Launcher mechanics with a small real script under real torchrun (no torch in the ranks, so it is quick):
the supervisor records the ranks, and ranks that outlive a SIGKILLed torchrun are killed — even when they did
not ask for PR_SET_PDEATHSIG as the real trainer does."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest

from runs_helpers import wait_for
from tui_trainer.runs import RunStore, launcher, procs
from tui_trainer.runs.launcher import start
from tui_trainer.runs.files import write_private
from tui_trainer.training.lib.config import load_config

RANK_SCRIPT = textwrap.dedent("""
    # A rank that ignores SIGTERM's default and never sets PR_SET_PDEATHSIG: a would-be orphan.
    import os, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(os.path.join(os.environ["GPT_CONSOLE_RUN_DIR"], f"rank{os.environ['RANK']}.pid"), "w").write(
        str(os.getpid()))
    while True:
        time.sleep(0.1)
""")


@pytest.mark.slow
def test_sigkilled_torchrun_leaves_no_orphan_ranks(tmp_path, monkeypatch):
    run, launch = launch_stubborn(tmp_path, monkeypatch)
    assert procs.is_alive(launch["supervisor"]) and procs.is_alive(launch["torchrun"])
    pids = sorted(w["pid"] for w in launch["workers"])
    # The supervisor may see the ranks before their Python has started and written its pid file.
    wait_for(lambda: all(_pid_file(run.dir, r) for r in (0, 1)), 60, "both ranks' pid files")
    assert pids == sorted(_pid_file(run.dir, r) for r in (0, 1))
    assert run.status().state == "running"

    os.kill(launch["torchrun"]["pid"], signal.SIGKILL)
    wait_for(lambda: run.status().final, 30, "a final status")
    assert not any(procs.is_alive(w) for w in launch["workers"]), "a rank survived its torchrun"
    wait_for(lambda: not procs.is_alive(launch["supervisor"]), 10, "the supervisor to exit")
    status = run.status()
    assert status.state == "lost" and status.source == "supervisor" and status.exit_code == -9
    assert "SIGKILL" in status.reason
    assert "killed orphaned rank process" in "\n".join(run.log_tail(20))


def _pid_file(run_dir, rank: int) -> int | None:
    try:
        return int((run_dir / f"rank{rank}.pid").read_text())
    except (OSError, ValueError):  # not there yet, or written half-way
        return None


def launch_stubborn(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir(exist_ok=True)
    (tmp_path / "pkg" / "stubborn_rank.py").write_text(RANK_SCRIPT)
    monkeypatch.setitem(launcher.TRAINER_MODULES, "train", "stubborn_rank")
    cfg = load_config(None, ["launch.nproc_per_node=2", f'launch.env.PYTHONPATH="{tmp_path / "pkg"}"'])
    run = RunStore(tmp_path / "runs").create("mechanics")
    write_private(run.config_file, "")
    start(run, cfg, resume=False)
    launch = wait_for(lambda: (lambda i: i if len(i.get("workers") or []) == 2 else None)(run.launch_info()),
                      60, "the supervisor to record both ranks")
    return run, launch


@pytest.mark.slow
def test_stop_escalates_to_sigkill_when_ranks_ignore_sigterm(tmp_path, monkeypatch):
    run, launch = launch_stubborn(tmp_path, monkeypatch)
    status = run.stop(timeout=1.0, kill_timeout=10.0)
    everything = [launch["supervisor"], launch["torchrun"], *launch["workers"]]
    assert not any(procs.is_alive(e) for e in everything), "stop left a process of the launch alive"
    assert status.state == "stopped" and "killed before" in status.reason
    assert "SIGTERM received" in "\n".join(run.log_tail(20))  # the graceful request went first
