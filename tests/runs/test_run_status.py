"""Status derivation from files and /proc, without anyone having watched the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tui_trainer.runs import RunStore, derive_status, procs
from tui_trainer.runs.files import write_json
from tui_trainer.runs.status import conclude

from event_samples import event


def events(run, *items) -> None:
    """Schema-valid events (readers drop invalid ones): each type's sample payload, overridden by ``payload``."""
    with open(run.events_file, "a") as f:
        for i, (kind, payload) in enumerate(items):
            f.write(json.dumps({**event(i, kind, **payload), "t": 1.0 + i}) + "\n")


def test_pid_reuse_cannot_fool_status(tmp_path):
    """launch.json names a live pid (this test process) but with another start time: not running."""
    run = RunStore(tmp_path).create("reuse")
    me = procs.stamp(os.getpid())
    assert procs.is_alive(me)
    forged = dict(me, start_ticks=me["start_ticks"] - 1)
    other_boot = dict(me, boot_id="00000000-0000-0000-0000-000000000000")
    for entry in (forged, other_boot):
        write_json(run.launch_file, {"launch": 1, "supervisor": entry, "torchrun": entry, "workers": [entry]})
        run.status_file.unlink(missing_ok=True)
        status = run.status()
        assert status.state == "lost", status
    assert not procs.signal_process(forged, 0)  # nor would we signal the impostor


def test_zombie_is_not_alive(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    entry = procs.stamp(child.pid)
    deadline = 50
    while procs.read_stat(child.pid).state != "Z" and deadline:  # exited but not reaped yet
        import time
        time.sleep(0.1)
        deadline -= 1
    assert not procs.is_alive(entry)
    child.wait()


def test_run_end_decides_once_processes_are_gone(tmp_path):
    run = RunStore(tmp_path).create("done")
    write_json(run.launch_file, {"launch": 1, "events_offset": 0, "supervisor": None, "workers": []})
    events(run, ("run_start", {}), ("step", {"step": 4}),
           ("run_end", {"status": "finished", "reason": "reached max_steps", "step": 5}))
    status = run.status()
    assert (status.state, status.step, status.reason) == ("finished", 5, "reached max_steps")
    assert json.loads(run.status_file.read_text())["state"] == "finished"  # persisted by the derivation


def test_old_segment_run_end_does_not_count_for_a_new_launch(tmp_path):
    """A resume that dies before writing anything is not 'stopped' just because the old segment was."""
    run = RunStore(tmp_path).create("resumed")
    events(run, ("run_start", {}), ("run_end", {"status": "stopped", "reason": "user", "step": 3}))
    offset = run.events_file.stat().st_size
    write_json(run.launch_file, {"launch": 2, "events_offset": offset, "workers": []})
    (run.dir / "logs" / "trainer.log").write_text("Traceback...\nRuntimeError: boom\n")
    status = run.status()
    assert status.state == "lost" and "RuntimeError: boom" in status.reason


def test_status_json_of_an_earlier_launch_is_ignored(tmp_path):
    run = RunStore(tmp_path).create("x")
    write_json(run.status_file, {"launch": 1, "state": "stopped", "reason": "user"})
    write_json(run.launch_file, {"launch": 2, "events_offset": 0, "workers": []})
    assert run.status().state == "lost"


def test_conclude_reasons():
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "logs").mkdir()
        launch = {"launch": 1, "events_offset": 0}
        assert conclude(d, launch, -9, source="t").state == "lost"
        assert "SIGKILL" in conclude(d, launch, -9, source="t").reason
        failed = conclude(d, launch, 1, source="t")
        assert failed.state == "failed" and failed.label == "failed (exit 1)" and "code 1" in failed.reason
        write_json(d / "stop.json", {"launch": 1})
        assert conclude(d, launch, -9, source="t").state == "stopped"
        with open(d / "events.jsonl", "w") as f:
            f.write(json.dumps(event(0, "error", message="CUDA out of memory\nmore")) + "\n")
            f.write(json.dumps(event(1, "run_end", status="failed", reason="exception", step=7)) + "\n")
        failed = conclude(d, launch, 1, source="t")
        assert failed.state == "failed" and "CUDA out of memory" in failed.reason and failed.step == 7


def test_unmanaged_run_dir(tmp_path):
    run = RunStore(tmp_path).create("manual")
    assert run.status().state == "created"
    events(run, ("run_start", {}), ("step", {"step": 0}))
    assert run.status().state == "lost"  # old timestamps, no process known
    events(run, ("run_end", {"status": "finished", "reason": "done", "step": 1}))
    assert derive_status(run.dir).state == "finished"
