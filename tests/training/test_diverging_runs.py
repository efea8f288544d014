"""Diverging runs: a NaN/inf step is skipped on every rank with an alert, too many in a row stop the run
`failed` with the last finite weights saved, and a loss spike raises an alert."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tui_trainer.runs.status import derive_status
from tui_trainer.training.lib.checkpoint import list_checkpoints, load_checkpoint
from tui_trainer.training.lib.health import MIN_BASELINE, HealthMonitor

from .harness import check_events, of_type, prepared_workdir, read_events, run_trainer, trainer_env


# ------------------------------------------------------------------------------------------ the monitor
def test_consecutive_nonfinite_steps_fail_the_run_and_a_finite_one_resets_the_count():
    monitor = HealthMonitor(max_bad_steps=3, spike_window=0, spike_threshold=6.0)
    assert monitor.observe(0, 5.0, 1.0) == []
    for step, (loss, norm) in enumerate([(math.nan, 1.0), (4.0, math.inf)], start=1):
        [alert] = monitor.observe(step, loss, norm)
        assert alert["kind"] == "nonfinite" and alert["bad_steps"] == step
        assert f"step {step}" in alert["message"]
    assert monitor.failure is None
    monitor.observe(3, 4.0, 1.0)  # finite again: the count starts over
    for step in (4, 5):
        monitor.observe(step, math.inf, math.nan)
    assert monitor.failure is None
    [alert] = monitor.observe(6, math.nan, math.nan)
    assert alert["bad_steps"] == 3 and alert["loss"] is None and alert["grad_norm"] is None
    assert monitor.failure.startswith("diverged at step 4: 3 steps in a row (4–6)")


def test_a_spike_far_above_the_recent_median_raises_one_alert_per_episode():
    monitor = HealthMonitor(max_bad_steps=5, spike_window=50, spike_threshold=6.0)
    noise = [0.02 * math.sin(i * 1.7) for i in range(60)]
    losses = [3.0 + n for n in noise[:40]] + [9.0, 9.5] + [3.0 + n for n in noise[42:]]
    alerts = [(step, a) for step, loss in enumerate(losses) for a in monitor.observe(step, loss, 1.0)]
    assert [(step, a["kind"]) for step, a in alerts] == [(40, "spike")]
    assert alerts[0][1]["baseline"] == pytest.approx(3.0, abs=0.03) and alerts[0][1]["loss"] == 9.0


def test_no_spike_is_called_on_a_falling_loss_or_before_the_baseline_fills():
    monitor = HealthMonitor(max_bad_steps=5, spike_window=20, spike_threshold=3.0)
    assert all(monitor.observe(step, 10.0 * 0.97 ** step, 1.0) == [] for step in range(200))
    fresh = HealthMonitor(max_bad_steps=5, spike_window=20, spike_threshold=3.0)
    too_few = [3.0] * (MIN_BASELINE - 1) + [99.0]
    assert all(fresh.observe(step, loss, 1.0) == [] for step, loss in enumerate(too_few))


def test_spike_alerts_can_be_turned_off():
    monitor = HealthMonitor(max_bad_steps=5, spike_window=0, spike_threshold=1.0)
    assert all(monitor.observe(step, 3.0 if step < 30 else 30.0, 1.0) == [] for step in range(40))


# ------------------------------------------------------------------------------ all ranks agree (gloo)
def _skip_verdict(rank: int, port: int, results) -> None:
    import torch.distributed as dist
    from tui_trainer.training.lib.step import finite_on_every_rank
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        loss = torch.tensor(math.nan if rank == 1 else 2.0)  # only rank 1 saw a NaN
        results[rank] = finite_on_every_rank(loss, torch.tensor(1.0), distributed=True)
    finally:
        dist.destroy_process_group()


def test_a_nan_on_one_rank_skips_the_update_on_every_rank():
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_skip_verdict, args=(port, results), nprocs=2, join=True)
    assert dict(results) == {0: False, 1: False}


# ------------------------------------------------------------------------------------------- the trainer
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return prepared_workdir(tmp_path_factory, "diverging")


# A learning rate of 1e30 leaves finite but enormous weights after step 0; every later forward overflows.
EXPLODE = ("optim.max_lr=1e30", "schedule.warmup_steps=0", "eval.every=0", "optim.max_bad_steps=3")


@pytest.mark.slow
def test_a_diverging_run_stops_failed_with_the_last_finite_weights(workdir):
    run_dir = workdir / "exploding"
    result = run_trainer(workdir / "tiny.toml", run_dir, *EXPLODE, "schedule.max_steps=12")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    events = read_events(run_dir)
    check_events(events)
    alerts = of_type(events, "alert")
    assert [(a["step"], a["kind"], a["bad_steps"]) for a in alerts] == [
        (1, "nonfinite", 1), (2, "nonfinite", 2), (3, "nonfinite", 3)]
    end = events[-1]
    assert end["status"] == "failed" and end["step"] == 4 and end["reason"].startswith("diverged at step 1: ")
    status = derive_status(run_dir, persist=False)
    assert status.state == "failed" and "step 1" in status.reason
    cli = [sys.executable, "-m", "tui_trainer.cli"]
    shown = subprocess.run(cli + ["status", "exploding", "--runs-root", str(workdir)], env=trainer_env(),
                           capture_output=True, text=True, timeout=60)
    assert "alerts   3:" in shown.stdout
    assert "step 3: loss nan, gradient norm nan — update skipped" in shown.stdout
    listed = subprocess.run(cli + ["runs", "--runs-root", str(workdir)], env=trainer_env(),
                            capture_output=True, text=True, timeout=60).stdout.splitlines()
    column, row = listed[0].index("ALERTS"), next(line for line in listed if line.startswith("exploding"))
    assert row[column:].split()[0] == "3", listed

    # The three bad steps changed nothing: the saved weights and optimizer are those after step 0.
    [saved] = list_checkpoints(run_dir / "checkpoints")
    assert saved.name == "step-00000004"
    reference = workdir / "one-step"
    assert run_trainer(workdir / "tiny.toml", reference, *EXPLODE, "schedule.max_steps=1").returncode == 0
    after_step_0 = load_checkpoint(list_checkpoints(reference / "checkpoints")[0])
    state = load_checkpoint(saved)
    for name, tensor in state["model"].items():
        assert torch.isfinite(tensor).all() and torch.equal(tensor, after_step_0["model"][name]), name
    assert state["optimizer"]["state"][0]["step"] == after_step_0["optimizer"]["state"][0]["step"] == 1


def test_weights_that_are_no_longer_finite_are_told_apart():
    """A run that stops for divergence saves its weights only when they are all finite (lib/step.py)."""
    from tui_trainer.training.lib.step import weights_finite
    model = torch.nn.Linear(3, 2)
    assert weights_finite(model)
    with torch.no_grad():
        model.bias[1] = math.inf
    assert not weights_finite(model)
