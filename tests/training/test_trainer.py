"""The trainer for real: subprocesses and torchrun (gloo) on a 2-layer × 32-wide model, on CPU.

One uninterrupted 12-step run is the reference; DDP, stop/resume and SIGTERM runs must reproduce its losses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tui_trainer.channel.control import send_control
from tui_trainer.training.lib.config import load_config, parameter_count

from .harness import (check_events, kill_group, of_type, prepared_workdir, read_events, run_trainer, start_trainer,
                      step_losses, wait_for_event)

pytestmark = pytest.mark.slow
STEPS = "schedule.max_steps=12"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return prepared_workdir(tmp_path_factory, "trainer")


@pytest.fixture(scope="module")
def reference(workdir) -> dict:
    """12 steps uninterrupted, checkpoint every 6: the losses every other run is held to."""
    run_dir = workdir / "reference"
    result = run_trainer(workdir / "tiny.toml", run_dir, STEPS, "checkpoint.every=6")
    assert result.returncode == 0, result.stderr
    return {"run_dir": run_dir, "events": read_events(run_dir), "stdout": result.stdout}


def test_run_writes_valid_events_checkpoints_and_learns(workdir, reference):
    events, run_dir = reference["events"], reference["run_dir"]
    check_events(events)
    cfg = load_config(workdir / "tiny.toml", [STEPS, "checkpoint.every=6"])
    [start] = of_type(events, "run_start")
    assert start["params"] == parameter_count(cfg) and start["world_size"] == 1 and start["trainer"] == "train"
    assert (start["dtype"], start["grad_accum_steps"], start["start_step"]) == ("float32", 2, 0)
    assert start["resumed_from_step"] is None and start["device"] == "cpu"
    assert start["peak_flops"] > 1e9  # a CPU's peak is measured by lib/peak.py's probe (cached per machine)
    assert start["config"]["model"]["n_embd"] == 32
    steps = of_type(events, "step")
    assert [e["step"] for e in steps] == list(range(12))
    assert [e["tokens"] for e in steps] == [256 * (i + 1) for i in range(12)]
    assert all(0 < e["mfu"] < 1 and e["tok_per_s"] > 0 and e["grad_norm"] > 0 for e in steps)
    val = {e["step"]: e["loss"] for e in of_type(events, "val")}
    assert sorted(val) == [0, 4, 8, 12] and val[12] < val[0] - 0.3
    checkpoints = of_type(events, "checkpoint")
    assert [(c["step"], c["reason"]) for c in checkpoints] == [(6, "schedule"), (12, "final")]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000006", "step-00000012"]
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "finished" and events[-1]["step"] == 12
    assert load_config(run_dir / "config.toml") == cfg  # the resolved config is saved with the run
    assert "step     11 | loss" in reference["stdout"]


def test_fresh_start_refuses_to_overwrite_checkpoints(workdir, reference):
    run_dir = workdir / "refuse"
    shutil.copytree(reference["run_dir"], run_dir)
    before = (run_dir / "checkpoints" / "step-00000012" / "meta.json").read_text()
    result = run_trainer(workdir / "tiny.toml", run_dir, STEPS)
    assert result.returncode == 2
    assert "--resume" in result.stderr and "Traceback" not in result.stderr
    events = read_events(run_dir)
    check_events(events)
    assert events[-2]["type"] == "error" and events[-1]["status"] == "failed"
    assert (run_dir / "checkpoints" / "step-00000012" / "meta.json").read_text() == before


def test_two_ranks_match_one_rank_with_twice_the_accumulation(workdir, reference):
    run_dir = workdir / "ddp"
    result = run_trainer(workdir / "tiny.toml", run_dir, STEPS, nproc=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Abort" not in result.stderr and "terminate called" not in result.stderr  # clean gloo teardown
    events = read_events(run_dir)
    check_events(events)
    [start] = of_type(events, "run_start")
    assert start["world_size"] == 2 and start["grad_accum_steps"] == 1
    ddp, ref = step_losses(events), step_losses(reference["events"])
    assert sorted(ddp) == sorted(ref) == list(range(12))
    for step in ref:
        assert ddp[step] == pytest.approx(ref[step], rel=2e-6, abs=0), step
    ref_norms = {e["step"]: e["grad_norm"] for e in of_type(reference["events"], "step")}
    for e in of_type(events, "step"):
        assert e["grad_norm"] == pytest.approx(ref_norms[e["step"]], rel=1e-5)
    # (validation differs by design: each rank evaluates val_steps batches of its own, so 2 ranks see twice
    # the validation tokens of 1.)
    assert [e["step"] for e in of_type(events, "val")] == [0, 4, 8, 12]


def test_sigterm_checkpoints_exits_zero_and_resume_reproduces_the_run(workdir, reference):
    run_dir = workdir / "sigterm"
    proc = start_trainer(workdir / "tiny.toml", run_dir, STEPS)
    try:
        wait_for_event(run_dir, lambda e: e["type"] == "step" and e["step"] >= 1, proc=proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        kill_group(proc)
    events = read_events(run_dir)
    check_events(events)
    end = events[-1]
    assert end["type"] == "run_end" and end["status"] == "stopped" and "SIGTERM" in end["reason"]
    stopped_at = end["step"]
    assert 2 <= stopped_at < 12, "the stop landed after the run ended; the machine is extremely slow"
    [ckpt] = of_type(events, "checkpoint")
    assert (ckpt["step"], ckpt["reason"]) == (stopped_at, "stop")
    assert (run_dir / "checkpoints" / f"step-{stopped_at:08d}" / "meta.json").is_file()

    result = run_trainer(workdir / "tiny.toml", run_dir, STEPS, resume=True)
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    check_events(events)
    starts = of_type(events, "run_start")
    assert [s["start_step"] for s in starts] == [0, stopped_at]
    assert starts[1]["resumed_from_step"] == stopped_at
    ref = step_losses(reference["events"])
    resumed = step_losses(events)
    assert sorted(resumed) == list(range(12))
    assert resumed == ref  # bit-identical: same weights, optimizer moments, data position and LR
    ref_val = {e["step"]: e["loss"] for e in of_type(reference["events"], "val")}
    assert {e["step"]: e["loss"] for e in of_type(events, "val")} == ref_val


def test_sigterm_to_one_rank_stops_all_ranks_together(workdir):
    run_dir = workdir / "ddp-sigterm"
    proc = start_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=200", "eval.every=0", nproc=2)
    try:
        wait_for_event(run_dir, lambda e: e["type"] == "step" and e["step"] >= 1, proc=proc)
        rank1 = next(pid for pid in _descendants(proc.pid) if _environ(pid).get("RANK") == "1")
        os.kill(rank1, signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        kill_group(proc)
    events = read_events(run_dir)
    check_events(events)
    end = events[-1]
    assert end["status"] == "stopped" and end["step"] < 200
    [ckpt] = of_type(events, "checkpoint")
    assert ckpt["step"] == end["step"] and ckpt["reason"] == "stop"
    log = (workdir / "ddp-sigterm.log").read_text()
    assert "Abort" not in log and "terminate called" not in log


def test_control_requests_are_acted_on_and_acknowledged(workdir):
    run_dir = workdir / "control"
    ids = {"checkpoint": send_control(run_dir, "checkpoint"),
           "sample": send_control(run_dir, "sample", prompt="The function"),
           "eval": send_control(run_dir, "eval")}
    (run_dir / "control" / "99-bogus.json").write_text(json.dumps({"action": "dance"}))
    result = run_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=3", "eval.every=0")
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    check_events(events)
    acks = {a["id"]: a for a in of_type(events, "control_ack")}
    for action, request_id in ids.items():
        assert acks[request_id]["ok"] and acks[request_id]["action"] == action and acks[request_id]["step"] == 1
    assert not acks["99-bogus"]["ok"] and "unknown action" in acks["99-bogus"]["message"]
    assert [(c["step"], c["reason"]) for c in of_type(events, "checkpoint")] == [(1, "control"), (3, "final")]
    [sample] = [s for s in of_type(events, "sample") if s["source"] == "control"]
    assert sample["step"] == 1 and sample["prompt"] == "The function" and len(sample["texts"]) == 2
    assert [v["step"] for v in of_type(events, "val")] == [1, 3]
    assert sorted(p.name for p in (run_dir / "control" / "done").iterdir()) == sorted(
        [f"{i}.json" for i in ids.values()] + ["99-bogus.json"])


def test_stop_request_checkpoints_and_ends_stopped(workdir):
    run_dir = workdir / "stop"
    request = send_control(run_dir, "stop")
    result = run_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=50")
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    check_events(events)
    [ack] = of_type(events, "control_ack")
    assert ack["id"] == request and ack["ok"] and ack["step"] == 1
    assert events[-1]["status"] == "stopped" and events[-1]["step"] == 1
    assert (run_dir / "checkpoints" / "step-00000001").is_dir()


def test_hellaswag_and_samples_on_schedule_and_missing_hellaswag_is_skipped(workdir):
    examples = [{"ctx": f"The cat sat on the {w}.", "label": i % 4,
                 "endings": ["It purred.", "It slept there.", "Then it left.", "A dog came."]}
                for i, w in enumerate(["mat", "chair", "floor", "bed", "sofa"])]
    fixture = workdir / "hellaswag_tiny.jsonl"
    fixture.write_text("".join(json.dumps(e) + "\n" for e in examples))
    run_dir = workdir / "hellaswag"
    result = run_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=2", "eval.every=2",
                         "eval.hellaswag_every=2", f"eval.hellaswag_path='{fixture}'", "sample.every=2")
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    check_events(events)
    hs = of_type(events, "hellaswag")
    assert [h["step"] for h in hs] == [0, 2] and all(h["total"] == 5 for h in hs)
    assert all(h["acc"] == pytest.approx(h["correct"] / 5) for h in hs)
    samples = of_type(events, "sample")
    assert [(s["step"], s["source"]) for s in samples] == [(0, "schedule"), (2, "final")]
    assert all(len(s["texts"]) == 2 and all(isinstance(t, str) for t in s["texts"]) for s in samples)

    run_dir = workdir / "no-hellaswag"
    result = run_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=2", "eval.hellaswag_every=1",
                         f"eval.hellaswag_path='{workdir / 'missing.jsonl'}'")
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    check_events(events)
    warnings = [e for e in of_type(events, "log") if "HellaSwag skipped" in e["message"]]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning" and "missing.jsonl" in warnings[0]["message"]
    assert not of_type(events, "hellaswag") and events[-1]["status"] == "finished"


def test_user_errors_are_one_paragraph_and_crashes_carry_a_traceback(workdir):
    run_dir = workdir / "bad-config"
    result = run_trainer(workdir / "tiny.toml", run_dir, "optim.max_llr=1")
    assert result.returncode == 2
    assert "did you mean 'max_lr'" in result.stderr and "Traceback" not in result.stderr
    events = read_events(run_dir)
    check_events(events)
    assert [e["type"] for e in events] == ["error", "run_end"] and events[1]["status"] == "failed"

    run_dir = workdir / "corrupt"
    broken = run_dir / "checkpoints" / "step-00000002"
    broken.mkdir(parents=True)
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    (broken / "meta.json").write_text("{}")
    result = run_trainer(workdir / "tiny.toml", run_dir, resume=True)
    assert result.returncode == 1
    events = read_events(run_dir)
    check_events(events)
    [error] = of_type(events, "error")
    assert "Traceback" in error["traceback"] and "checkpoint" in error["traceback"]
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "failed"


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    deadline = time.monotonic() + 10
    while frontier and time.monotonic() < deadline:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        frontier += [int(c) for c in children]
    return found


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@pytest.mark.parametrize("nproc", [1, 2])
def test_deleted_run_dir_stops_the_run_and_writes_nothing_back(workdir, nproc):
    """A deleted run is gone for good: its trainer once made the directory again for an 84 MB checkpoint that
    neither the console nor `gpt-console runs` showed. Every rank stops (they agree on it), nothing is saved."""
    run_dir = workdir / f"deleted-{nproc}"
    proc = start_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=100000", "eval.every=0",
                         nproc=nproc)
    try:
        wait_for_event(run_dir, lambda e: e["type"] == "step" and e["step"] >= 1, proc=proc)
        shutil.rmtree(run_dir)
        assert proc.wait(120) == 0
    finally:
        kill_group(proc)
    assert not run_dir.exists()


def test_killed_torchrun_leaves_no_workers(workdir):
    run_dir = workdir / "orphans"
    proc = start_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=100000", "eval.every=0", nproc=2)
    try:
        wait_for_event(run_dir, lambda e: e["type"] == "step", proc=proc)
        workers = [pid for pid in _descendants(proc.pid) if _environ(pid).get("RANK") in ("0", "1")]
        assert len(workers) == 2
        proc.kill()  # SIGKILL torchrun alone: no chance to forward anything
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), "workers outlived torchrun"
    finally:
        kill_group(proc)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
