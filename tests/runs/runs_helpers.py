"""Helpers for tests that launch the real trainer: the tiny config and waiting on events or a final status."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tui_trainer.channel.follower import EventFollower


def tiny_toml(shared_data: Path, cache_dir: Path, *, max_steps: int, accum: int = 1, hellaswag: bool = True) -> str:
    """2 ranks × micro-batch 4 × block 32 (× accum), a 2-layer 32-wide GPT on Tiny Shakespeare, float32 on CPU."""
    return f"""
[model]
n_layer = 2
n_head = 2
n_embd = 32
block_size = 32

[data]
source = "shakespeare"
path = "{shared_data / 'tinyshakespeare.txt'}"
cache_dir = "{cache_dir}"
shard_tokens = 200000

[optim]
micro_batch_size = 4
total_batch_size = {4 * 32 * 2 * accum}
max_lr = 3e-3

[schedule]
warmup_steps = 2
max_steps = {max_steps}

[eval]
every = {max_steps}
val_steps = 2
hellaswag_every = {max_steps if hellaswag else 0}
hellaswag_examples = 8
hellaswag_path = "{shared_data / 'hellaswag_val.jsonl.gz'}"

[sample]
every = {max_steps}
count = 2
max_tokens = 8

[checkpoint]
every = 0

[system]
device = "cpu"
dtype = "float32"
heartbeat_seconds = 1.0

[launch]
nproc_per_node = 2
omp_num_threads = 1
"""


def read_events(path: Path) -> list[dict]:
    """Every line of the log as JSON — strictly: a blank or broken line fails the test."""
    text = path.read_text()
    assert text.endswith("\n"), "the event log ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]


def wait_for_event(run, predicate, timeout: float, what: str) -> dict:
    """Poll the run's whole log (tiny in these tests) until an event satisfies ``predicate``; fail with the log
    tail on timeout or if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        final = run.status().final
        for event in EventFollower(run.events_file):
            if predicate(event):
                return event
        if final:
            pytest.fail(f"run ended ({run.status()}) before {what}; log:\n" + "\n".join(run.log_tail(30)))
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}; log:\n" + "\n".join(run.log_tail(30)))


def wait_final(run, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run.status()
        if status.final:
            return status
        time.sleep(0.1)
    pytest.fail(f"run still {run.status()} after {timeout} s; log:\n" + "\n".join(run.log_tail(30)))


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")
