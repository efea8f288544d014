"""A full disk, on a real tmpfs (mounted by the test; skipped with the reason where mounting is not allowed):
a checkpoint that does not fit leaves no temp dir and keeps the earlier checkpoints, the run ends `failed`
with a "disk full" reason, the status reader does not blame the OOM killer, a full event log stops the
trainer, the CLI says it in one paragraph, and a prune cut short is finished by the next one."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from tui_trainer.channel.diskfull import DiskFull
from tui_trainer.runs.status import conclude, derive_status
from tui_trainer.training.lib.checkpoint import (gather_rng_states, is_complete, list_checkpoints,
                                                 prune_checkpoints, save_checkpoint)
from tui_trainer.training.lib.config import config_to_dict, config_to_toml, load_config
from tui_trainer.training.lib.model import GPT
from tui_trainer.training.lib.optim import configure_optimizer

from .harness import prepared_workdir, read_events, run_trainer, trainer_env

MB = 1024 * 1024


@pytest.fixture()
def tmpfs(tmp_path):
    """Mount a small tmpfs of the requested size; unmounted whatever the outcome."""
    mounted = []

    def mount(size_mb: int) -> Path:
        where = tmp_path / f"tmpfs-{len(mounted)}"
        where.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs",
                                 str(where)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Fill the filesystem holding ``directory`` up to ``leave_bytes`` of free space."""
    filler = directory / f"filler-{uuid.uuid4().hex[:6]}"
    free = shutil.disk_usage(directory).free
    with open(filler, "wb") as f:
        try:
            remaining = free - leave_bytes
            while remaining > 0:
                chunk = min(remaining, MB)
                f.write(b"\0" * chunk)
                remaining -= chunk
            f.flush()
        except OSError as e:  # the last chunk may hit the full disk itself: that is the point
            if e.errno != errno.ENOSPC:
                raise
    return filler


# --------------------------------------------------------------------------------------- checkpoint write
TINY = ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=16", "sample.max_tokens=4"]


def _save(root: Path, step: int, keep_last: int = 0) -> Path:
    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opt = configure_optimizer(model, cfg, "cpu")
    x = torch.randint(0, 50257, (2, 16))
    model(x, x)[1].backward()
    opt.step()
    return save_checkpoint(root, step, model=model, optimizer=opt, data_state={"position": step},
                           rng=gather_rng_states(torch.device("cpu")), config=config_to_dict(cfg),
                           config_toml=config_to_toml(cfg), tokens=step, evals_done=True, keep_last=keep_last)


def test_a_checkpoint_that_does_not_fit_leaves_nothing_behind(tmpfs):
    disk = tmpfs(16)  # one ~9.3 MB checkpoint fits, two do not
    root = disk / "checkpoints"
    first = _save(root, 1)
    with pytest.raises(DiskFull) as caught:
        _save(root, 2)
    message = str(caught.value)
    assert message.startswith(f"disk full: {root}, "), message
    assert " MB free, checkpoint needs ~9.3 MB" in message, message
    assert [p.name for p in root.iterdir()] == [first.name] and is_complete(first)
    assert shutil.disk_usage(disk).free > 5 * MB  # the temp dir's space is given back


# ---------------------------------------------------------------------------------------------- pruning
def test_prune_finishes_a_delete_that_was_cut_short(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        _save(root, step)
    # What `rmtree(step-00000001)` killed halfway leaves: the dir without its meta.json (or checkpoint.pt).
    (root / "step-00000001" / "meta.json").unlink()
    # ...and what a kill during the new rename-then-delete leaves: a temp dir of a dead process.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    leftover = root / f".tmp-step-00000000-deleting-{int(dead.stdout)}"
    leftover.mkdir()
    (leftover / "checkpoint.pt").write_bytes(b"x" * 1000)
    prune_checkpoints(root, keep_last=3)
    assert sorted(p.name for p in root.iterdir()) == ["step-00000002", "step-00000003"]


# ----------------------------------------------------------------------------------------- the trainer
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return prepared_workdir(tmp_path_factory, "diskfull")


@pytest.mark.slow
def test_trainer_fails_cleanly_when_a_checkpoint_hits_a_full_disk(workdir, tmpfs):
    disk = tmpfs(32)  # the tiny model's checkpoint is ~19.5 MB: step 2's fits, step 4's does not
    run_dir = disk / "runs" / "full-run"
    run_dir.parent.mkdir()
    result = run_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=8", "checkpoint.every=2")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "disk full: " in result.stderr
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-00000002"]
    assert list_checkpoints(run_dir / "checkpoints")[0].name == "step-00000002"
    events = read_events(run_dir)  # every line parses: none torn
    assert [e["seq"] for e in events] == list(range(len(events)))  # none lost or written twice
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["message"].startswith(f"disk full: {run_dir / 'checkpoints'}, ")
    assert "checkpoint needs ~19" in errors[0]["message"] and errors[0]["traceback"] == ""
    end = events[-1]
    assert end["type"] == "run_end" and end["status"] == "failed" and end["step"] == 4
    assert end["reason"].startswith("disk full: ")
    status = derive_status(run_dir, persist=False)
    assert status.state == "failed" and "disk full" in status.reason

    # Full to the last byte now: the CLI says so in one paragraph, whatever the verb.
    fill(disk)
    cli = [sys.executable, "-m", "tui_trainer.cli"]
    for argv in (["resume", "full-run"], ["run", str(workdir / "tiny.toml"), "--detach"]):
        done = subprocess.run(cli + argv + ["--runs-root", str(disk / "runs")], env=trainer_env(),
                              cwd=workdir, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("gpt-console: disk full: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_status_reader_tells_a_full_disk_from_an_oom_kill(tmpfs):
    disk = tmpfs(4)
    run_dir = disk / "run"
    run_dir.mkdir()
    beat = {"v": 1, "seq": 0, "t": 1.0, "type": "heartbeat", "step": 3}
    (run_dir / "events.jsonl").write_text(json.dumps(beat) + "\n" + '{"v": 1, "seq": 1, "t": 2.0, "ty')
    launch = {"launch": 1, "events_offset": 0}
    before = conclude(run_dir, launch, None, source="derived")
    assert "disk" not in before.reason  # room to spare: nothing points at the disk
    fill(disk)
    for exit_code in (None, -9, 1):
        status = conclude(run_dir, launch, exit_code, source="derived")
        assert "disk" in status.reason and "full" in status.reason, status.reason
        assert "out of memory" not in status.reason
    (run_dir / "launch.json").unlink(missing_ok=True)  # a run started by hand: no launch.json
    status = derive_status(run_dir, persist=False)
    assert status.state in ("failed", "lost") and "disk full" in status.reason, status


@pytest.mark.slow
def test_a_full_event_log_stops_the_trainer(workdir, tmpfs):
    disk = tmpfs(1)
    events_file = disk / "events.jsonl"
    fill(disk, leave_bytes=12 * 1024)  # room for run_start and a few dozen steps, not for 400
    run_dir = workdir / "log-full"
    argv = [sys.executable, "-m", "tui_trainer.training.train", "--config", str(workdir / "tiny.toml"),
            "--run-dir", str(run_dir), "--events", str(events_file), "--set", "schedule.max_steps=400",
            "--set", "eval.every=0"]
    result = subprocess.run(argv, env=trainer_env(), cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "disk full" in result.stderr and "Traceback" not in result.stderr, result.stderr
    saved = list_checkpoints(run_dir / "checkpoints")
    assert len(saved) == 1 and int(saved[0].name.split("-")[1]) < 400
    lines = events_file.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])  # never a torn line


def test_the_event_log_is_cut_back_to_whole_lines_and_catches_up_when_room_returns(tmpfs):
    from tui_trainer.channel.writer import EventWriter
    disk = tmpfs(1)
    path = disk / "events.jsonl"
    filler = fill(disk, leave_bytes=6 * 1024)
    writer = EventWriter(path)
    for i in range(20):  # these fit
        writer.emit("log", level="info", message=f"event {i} " + "x" * 60)
    deadline = time.monotonic() + 10
    while path.stat().st_size == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    written = path.read_bytes()
    for i in range(20, 200):  # ~20 KB more: the disk fills part-way through a line
        writer.emit("log", level="info", message=f"event {i} " + "x" * 60)
    deadline = time.monotonic() + 10
    while writer.write_failure is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.write_failure and writer.write_failure.startswith("disk full: could not write")
    now = path.read_bytes()  # cut back to its last whole line: nothing torn, nothing half-there
    assert written and now.startswith(written) and now.endswith(b"\n")
    assert all(json.loads(line) for line in now.splitlines())
    filler.unlink()  # room again: the next write brings everything queued
    writer.emit("heartbeat", step=1)
    writer.close()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(201)) and writer.write_failure is None


@pytest.mark.slow
@pytest.mark.parametrize("module", ["tui_trainer.training.train", "tui_trainer.training.onefile_train"])
def test_a_disk_full_before_the_first_checkpoint_is_one_paragraph_too(workdir, tmpfs, module):
    """The run directory's own first files (config.toml, the event log) hit the full disk: the same one-paragraph
    "disk full" message as a checkpoint gets, exit code 2, no traceback — from either trainer."""
    disk = tmpfs(1)
    run_dir = disk / "runs" / "no-room"
    run_dir.parent.mkdir()
    fill(disk)
    argv = [sys.executable, "-m", module, "--config", str(workdir / "tiny.toml"), "--run-dir", str(run_dir),
            "--set", "schedule.max_steps=2"]
    result = subprocess.run(argv, env=trainer_env(), cwd=workdir, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("disk full: "), result.stderr
    assert "free some space" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
