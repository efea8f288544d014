"""A stop that arrives during a long evaluation is acted on within a few batches, not after it: the launcher
SIGKILLs a run that has not stopped 120 s after SIGTERM, and a 10,000-batch validation or a full HellaSwag on a
CPU outlasts that, losing every step since the last checkpoint. Every rank leaves the evaluation at the same
batch (2 gloo ranks, HellaSwag batched unevenly between them), nothing half-evaluated is reported, the stop
checkpoint is saved before that step's evaluations, and a resume redoes them."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from .harness import (check_events, kill_group, of_type, prepared_workdir, read_events, run_trainer, signal_ranks,
                      start_trainer, wait_for_event)

pytestmark = pytest.mark.slow

# 32 × 32-token micro-batches: 10,000 validation batches take tens of seconds even on a fast CPU.
BIG_BATCHES = ("optim.micro_batch_size=32", "optim.total_batch_size=2048", "schedule.max_steps=1000",
               "eval.every=4")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return prepared_workdir(tmp_path_factory, "stop-eval")


def stop_during(workdir: Path, run_dir: Path, overrides: tuple, nproc: int, started) -> list[dict]:
    """Start the trainer, SIGTERM it once ``started`` (an event predicate) shows the evaluation is under way,
    and return its events; it must exit 0 on its own, soon."""
    proc = start_trainer(workdir / "tiny.toml", run_dir, *overrides, nproc=nproc)
    try:
        wait_for_event(run_dir, started, timeout=180, proc=proc)
        time.sleep(0.5)
        signal_ranks(proc, signal.SIGTERM, nproc)
        assert proc.wait(timeout=60) == 0, (run_dir.parent / f"{run_dir.name}.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            kill_group(proc)
    events = read_events(run_dir)
    check_events(events)
    return events


def stopped_at_batch(events: list[dict], what: str, total: int | None = None) -> int:
    [note] = [e for e in of_type(events, "log") if f"stopped during {what}" in e["message"]]
    found = re.search(r"at batch (\d+) of (\d+)", note["message"])
    batch, of = int(found.group(1)), int(found.group(2))
    assert batch < of and (total is None or of == total), note
    return batch


def assert_stopped_before_the_step_evaluations(events: list[dict]) -> None:
    [checkpoint] = of_type(events, "checkpoint")
    assert checkpoint["reason"] == "stop" and checkpoint["step"] == 0
    end = events[-1]
    assert end["type"] == "run_end" and end["status"] == "stopped" and end["reason"] == "signal SIGTERM"


@pytest.mark.parametrize("nproc", [1, 2])
def test_a_stop_during_a_long_validation_loss_ends_it_within_a_few_batches(workdir, nproc):
    run_dir = workdir / f"val-{nproc}"
    events = stop_during(workdir, run_dir, BIG_BATCHES + ("eval.val_steps=10000",), nproc,
                         lambda e: e["type"] == "run_start")
    stopped_at_batch(events, "the validation loss", total=10000)
    assert of_type(events, "val") == [] and of_type(events, "step") == []  # nothing half-done reported
    assert_stopped_before_the_step_evaluations(events)

    # The resumed run redoes step 0's evaluation (a short one now), then trains on.
    result = run_trainer(workdir / "tiny.toml", run_dir, *BIG_BATCHES, "eval.val_steps=2",
                         "schedule.max_steps=2", nproc=nproc, resume=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    events = read_events(run_dir)
    check_events(events)
    resumed = events[max(i for i, e in enumerate(events) if e["type"] == "run_start"):]
    assert resumed[0]["resumed_from_step"] == 0
    assert [e["step"] for e in of_type(resumed, "val")] == [0, 2] and events[-1]["status"] == "finished"


@pytest.mark.parametrize("nproc", [1, 2])
def test_a_stop_during_hellaswag_ends_it_on_every_rank_at_the_same_batch(workdir, shared_data, nproc):
    overrides = BIG_BATCHES + ("eval.val_steps=2", "eval.hellaswag_every=4", "eval.hellaswag_examples=0",
                               f"eval.hellaswag_path={shared_data / 'hellaswag_val.jsonl.gz'}")
    run_dir = workdir / f"hellaswag-{nproc}"
    events = stop_during(workdir, run_dir, overrides, nproc, lambda e: e["type"] == "val")
    stopped_at_batch(events, "HellaSwag")
    assert of_type(events, "hellaswag") == [] and [e["step"] for e in of_type(events, "val")] == [0]
    assert_stopped_before_the_step_evaluations(events)
