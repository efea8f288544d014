"""The reasons status.json gives: a failure's message once and whole; a stop someone asked for says so; a
launch that is starting is not lost."""

from __future__ import annotations

import json
import time

from tui_trainer.runs import RunStore, derive_status
from tui_trainer.runs.files import write_json
from tui_trainer.runs.status import LAUNCH_GRACE_S, conclude


def write_events(run, *items) -> None:
    with open(run.events_file, "a") as f:
        for i, (kind, payload) in enumerate(items):
            f.write(json.dumps({"v": 1, "seq": i, "t": 1.0 + i, "type": kind, **payload}) + "\n")


def test_a_failure_reason_cut_by_run_end_is_given_once_and_whole(tmp_path):
    run = RunStore(tmp_path).create("offline")
    message = ("The GPT-2 BPE could not be loaded offline: the cached files are not in tiktoken's default "
               "cache /tmp/data-gym-cache, and downloading them failed (ConnectionError: openaipublic.blob.core"
               ".windows.net unreachable). Set TIKTOKEN_CACHE_DIR to a directory holding the cached files. "
               * 2).strip()
    write_events(run, ("run_start", {}), ("error", {"message": message, "traceback": ""}),
                 ("run_end", {"status": "failed", "reason": message[:300], "step": 0}))
    status = conclude(run.dir, {"launch": 1, "events_offset": 0}, 2, source="supervisor")
    assert status.reason == message
    assert status.reason.count("openaipublic") == 2   # the message's own two mentions, nothing repeated


def test_a_requested_stop_is_recorded_as_stopped_by_the_user(tmp_path):
    run = RunStore(tmp_path).create("stopped")
    write_json(run.dir / "stop.json", {"launch": 1, "requested_at": 5.0, "by": "ada", "pid": 1})
    write_events(run, ("run_start", {}),
                 ("run_end", {"status": "stopped", "reason": "signal SIGTERM", "step": 7}))
    status = conclude(run.dir, {"launch": 1, "events_offset": 0}, 0, source="supervisor")
    assert (status.state, status.reason) == ("stopped", "stopped by the user (ada)")


def test_a_stop_nobody_asked_for_keeps_the_trainers_reason(tmp_path):
    run = RunStore(tmp_path).create("signalled")
    write_events(run, ("run_start", {}),
                 ("run_end", {"status": "stopped", "reason": "signal SIGTERM", "step": 7}))
    status = conclude(run.dir, {"launch": 1, "events_offset": 0}, 0, source="supervisor")
    assert status.reason == "signal SIGTERM"


def test_a_slurm_job_signalled_by_slurm_says_so(tmp_path):
    """The time-limit warning (--signal=TERM@N) or an administrator's scancel --signal: nobody here asked."""
    run = RunStore(tmp_path).create("slurm-stopped")
    write_events(run, ("run_start", {}),
                 ("run_end", {"status": "stopped", "reason": "signal SIGTERM", "step": 7}))
    status = conclude(run.dir, {"launch": 1, "events_offset": 0, "backend": "slurm"}, 0, source="slurm job")
    assert status.state == "stopped" and status.reason.startswith("stopped by Slurm (SIGTERM: the job's time limit")
    assert "resume continues" in status.reason
    write_json(run.dir / "stop.json", {"launch": 1, "requested_at": 5.0, "by": "ada", "pid": 1})
    status = conclude(run.dir, {"launch": 1, "events_offset": 0, "backend": "slurm"}, 0, source="slurm job")
    assert status.reason == "stopped by the user (ada)"  # gpt-console stop: scancel --signal=TERM, asked for

def test_a_launch_whose_supervisor_is_not_recorded_yet_is_starting_not_lost(tmp_path):
    """launch.json exists a moment before the supervisor records itself; a look in that moment (the console
    polls every second) once persisted "lost" for a run that then trained fine (e2e failure, 1 run in 3)."""
    run = RunStore(tmp_path).create("starting")
    write_json(run.launch_file, {"launch": 2, "events_offset": 0, "supervisor": None, "torchrun": None,
                                 "workers": [], "started_at": time.time()})
    status = derive_status(run.dir)
    assert (status.state, status.reason) == ("running", "starting")
    assert not run.status_file.exists()                       # nothing persisted while it starts
    write_json(run.launch_file, {"launch": 2, "events_offset": 0, "supervisor": None, "torchrun": None,
                                 "workers": [], "started_at": time.time() - LAUNCH_GRACE_S - 1})
    assert derive_status(run.dir).state == "lost"             # a launcher that died meanwhile: lost after all


def test_the_stop_grace_follows_the_last_step_and_ignores_nonsense(tmp_path):
    from tui_trainer.runs.launcher import STOP_GRACE_MAX_S, stop_grace
    run = RunStore(tmp_path).create("slow")
    assert stop_grace(run, 120.0) == 120.0  # no launch.json, no events: the floor
    write_json(run.launch_file, {"launch": 1, "events_offset": 0})
    for dt, grace in ((0.5, 120.0), (200.0, 460.0), (-5.0, 120.0), ("300", 120.0), (None, 120.0),
                      (1e6, STOP_GRACE_MAX_S), (1e300, 120.0), (True, 120.0)):
        run.events_file.unlink(missing_ok=True)
        write_events(run, ("step", {"step": 0, "loss": 5.0, "lr": 1e-3, "grad_norm": 1.0, "dt": dt,
                                    "tok_per_s": 100.0, "tokens": 256, "mfu": None}))
        assert stop_grace(run, 120.0) == grace, dt
    run.events_file.write_text('{"type": "step", "dt": NaN}\n{"torn')
    assert stop_grace(run, 120.0) == 120.0
