"""The real trainer under real torchrun (2 ranks, gloo, CPU, tiny model), driven through the runs layer and
the CLI: follow to the end, control, stop, resume, SIGKILL."""

from __future__ import annotations

import csv
import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from tui_trainer.channel.schema import validate_event
from tui_trainer.runs import RunStore, procs

from runs_helpers import read_events, wait_final, wait_for, wait_for_event

pytestmark = pytest.mark.slow


def cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "tui_trainer.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def test_run_follow_to_the_end_then_every_cli_command(tmp_path, tiny_config):
    root = tmp_path / "runs"
    config = tiny_config(6)
    r = cli("run", str(config), "--runs-root", str(root))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "launched " in out and "HellaSwag at step 6" in out and "--- samples at step 6" in out
    assert "step 6/6" in out and "finished" in out.splitlines()[-1]

    store = RunStore(root)
    [run] = store.list()
    assert run.id.endswith("-tiny-6")
    # The run directory holds config, log, checkpoint, status, launch facts; all private.
    assert run.config_file.read_text() == config.read_text()          # no overrides: the user's text, verbatim
    assert not (run.dir / "config.source.toml").exists()
    assert [p.name for p in run.checkpoints()] == ["step-00000006"]
    assert re.search(r"step\s+5 \| loss", run.log_file.read_text())   # rank 0's own log line reached the file
    status = run.status()
    assert (status.state, status.exit_code, status.source, status.step) == ("finished", 0, "supervisor", 6)
    info = run.launch_info()
    assert len(info["workers"]) == 2 and info["torchrun"]["pid"] and info["user"] and info["host"]
    assert not any(procs.is_alive(e) for e in [info["supervisor"], info["torchrun"], *info["workers"]])
    for path in (run.dir, run.dir / "logs"):
        assert os.stat(path).st_mode & 0o077 == 0
    for path in (run.config_file, run.events_file, run.log_file, run.launch_file, run.status_file):
        assert os.stat(path).st_mode & 0o077 == 0, path

    # Events: valid, seq 0..n-1 with no gap, run_start first, steps in order, run_end last.
    events = read_events(run.events_file)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(validate_event(e) == [] for e in events), [validate_event(e) for e in events if validate_event(e)]
    assert events[0]["type"] in ("run_start", "log") and events[-1]["type"] == "run_end"
    assert [e["step"] for e in events if e["type"] == "step"] == list(range(6))
    kinds = [e["type"] for e in events]
    last_step = len(kinds) - 1 - kinds[::-1].index("step")
    assert kinds.index("run_start") < kinds.index("step") and "val" in kinds[last_step:] and "hellaswag" in kinds
    assert events[-1]["status"] == "finished"
    # A follower created after the end sees every event.
    follower = run.follower()
    replayed = list(follower)
    assert replayed == events and follower.ended and follower.skipped == 0

    # The CLI on the finished run.
    root_args = ("--runs-root", str(root))
    r = cli("runs", *root_args)
    row = next(line for line in r.stdout.splitlines() if line.startswith(run.id))
    assert "finished" in row and "6/6" in row
    r = cli("status", run.id[:12], *root_args)
    assert r.returncode == 0 and "finished" in r.stdout and "step-00000006" in r.stdout
    r = cli("logs", run.id, *root_args)
    assert r.returncode == 0 and "run finished at step 6" in r.stdout
    r = cli("logs", run.id, "-n", "1", *root_args)
    assert r.stdout.count("\n") == 1 and "torchrun exited with code 0" in r.stdout
    r = cli("export", run.id, "--csv", *root_args)
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [int(row["step"]) for row in rows] == list(range(7))       # steps 0..5, plus the final eval at 6
    assert rows[-1]["val_loss"] and rows[-1]["hellaswag_total"] == "8" and rows[0]["loss"]
    r = cli("attach", run.id, *root_args)
    assert r.returncode == 0 and "history:" in r.stdout and "finished" in r.stdout
    r = cli("resume", run.id, *root_args)
    assert r.returncode == 1 and "already trained all 6 steps" in r.stderr


def test_a_trainer_failure_is_reported_with_its_reason(tmp_path, tiny_config):
    r = cli("run", str(tiny_config(4)), "--runs-root", str(tmp_path / "runs"), "--set", "data.source=files",
            "--set", f'data.path="{tmp_path / "no-such-corpus.txt"}"')
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ERROR: data.path" in r.stdout and "no-such-corpus.txt" in r.stdout and "Traceback" not in r.stdout
    [run] = RunStore(tmp_path / "runs").list()
    status = run.status()
    assert status.state == "failed" and status.exit_code == 1 and "no-such-corpus.txt" in status.reason
    assert status.label == "failed (exit 1)"


def test_control_then_stop_then_resume_to_the_end(tmp_path, tiny_config):
    store = RunStore(tmp_path / "runs")
    max_steps = 40
    run = store.launch(config_path=tiny_config(max_steps, accum=2), overrides=["eval.every=0"])
    assert (run.dir / "config.source.toml").exists()                  # overrides: resolved config + original
    assert "eval.every=0" in run.config_file.read_text()

    wait_for_event(run, lambda e: e["type"] == "step" and e["step"] >= 2, 120, "step 2")
    assert run.status().state == "running"

    # Both requests at once (they are handled at the same step boundary), so the run is still young when
    # the stop comes even on a fast machine.
    sample_id = run.send_control("sample", prompt="ROMEO:")
    checkpoint_id = run.send_control("checkpoint")
    ack = wait_for_event(run, lambda e: e["type"] == "control_ack" and e["id"] == sample_id, 60, "the sample ack")
    assert ack["ok"] and ack["action"] == "sample"
    ack_ckpt = wait_for_event(run, lambda e: e["type"] == "control_ack" and e["id"] == checkpoint_id, 60,
                              "the checkpoint ack")
    events = read_events(run.events_file)
    [sample] = [e for e in events if e["type"] == "sample" and e["source"] == "control"]
    assert sample["prompt"] == "ROMEO:" and sample["step"] == ack["step"] and len(sample["texts"]) == 2
    [checkpoint] = [e for e in events if e["type"] == "checkpoint" and e["reason"] == "control"]
    assert checkpoint["step"] == ack_ckpt["step"]
    assert f"step-{ack_ckpt['step']:08d}" in [p.name for p in run.checkpoints()]

    status = run.stop(timeout=60)
    assert status.state == "stopped", status
    assert status.exit_code == 0                                      # ranks signalled, torchrun exited cleanly
    end = read_events(run.events_file)[-1]
    assert end["type"] == "run_end" and end["status"] == "stopped"
    stop_step = end["step"]
    assert stop_step < max_steps
    assert run.checkpoints()[-1].name == f"step-{stop_step:08d}"
    stop_ckpt = [e for e in read_events(run.events_file) if e["type"] == "checkpoint" and e["reason"] == "stop"]
    assert [e["step"] for e in stop_ckpt] == [stop_step]
    info = run.launch_info()
    assert not any(procs.is_alive(w) for w in info["workers"])

    run.resume()
    assert run.launch_info()["launch"] == 2 and run.launch_info()["history"][0]["status"]["state"] == "stopped"
    status = wait_final(run, 180)
    assert status.state == "finished" and status.launch == 2, status
    events = read_events(run.events_file)
    assert [e["seq"] for e in events] == list(range(len(events)))      # the log continued across the resume
    starts = [e for e in events if e["type"] == "run_start"]
    assert len(starts) == 2 and starts[1]["resumed_from_step"] == stop_step and starts[1]["start_step"] == stop_step
    after = events[events.index(starts[1]):]
    assert [e["step"] for e in after if e["type"] == "step"] == list(range(stop_step, max_steps))
    assert events[-1]["status"] == "finished" and events[-1]["step"] == max_steps
    summary = run.summary()
    assert summary.resumes == 1 and summary.status == "finished" and summary.step == max_steps - 1


def read_until(fd: int, needle: str, timeout: float, *, regex: bool = False) -> str:
    """Read a pty's output until ``needle`` (a literal, or a regular expression with regex=True) shows up."""
    seen, deadline = "", time.monotonic() + timeout
    while not (re.search(needle, seen) if regex else needle in seen):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {needle!r} within {timeout} s; got:\n{seen}")
        if select.select([fd], [], [], min(left, 0.2))[0]:
            try:
                seen += os.read(fd, 4096).decode("utf-8", "replace")
            except OSError:  # the other side closed
                pytest.fail(f"pty closed before {needle!r}; got:\n{seen}")
    return seen


def test_ctrl_c_detaches_cli_control_then_sigkill_leaves_no_rank(tmp_path, tiny_config):
    root = tmp_path / "runs"
    # `gpt-console run` on a terminal: Ctrl-C asks, "d" detaches, the run keeps going.
    master, slave = pty.openpty()
    follow = subprocess.Popen([sys.executable, "-m", "tui_trainer.cli", "run", str(tiny_config(100_000,
                              hellaswag=False)), "--runs-root", str(root)], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        # The progress line is redrawn at most a few times a second, so any step past the first one will do.
        read_until(master, r"step ([2-9]|\d\d+)/100000", 120, regex=True)
        follow.send_signal(signal.SIGINT)
        read_until(master, "[s]top it (checkpoint first), [d]etach, or [c]ontinue following?", 30)
        os.write(master, b"d\n")
        assert "detached" in read_until(master, "follows it again", 30)
        assert follow.wait(30) == 0
    finally:
        follow.kill()
        os.close(master)
    [run] = RunStore(root).list()
    assert run.status().state == "running"

    # `gpt-console attach` without a terminal: Ctrl-C detaches without asking.
    attach = subprocess.Popen([sys.executable, "-m", "tui_trainer.cli", "attach", run.id, "--runs-root", str(root)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    replayed = read_until(attach.stdout.fileno(), " | loss ", 60)     # history summarised, now following
    attach.send_signal(signal.SIGINT)
    out, err = attach.communicate(timeout=30)
    assert attach.returncode == 0 and b"detached" in out, replayed + (out + err).decode()
    assert "history:" in replayed
    assert run.status().state == "running"

    # The CLI's control command on the live run: waits for the acknowledgement, prints what it produced.
    r = cli("control", run.id, "sample", "--prompt", "JULIET:", "--runs-root", str(root), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "control 'sample' done at step" in r.stdout and "[0] JULIET:" in r.stdout and "[1] JULIET:" in r.stdout

    # SIGKILL torchrun: no rank survives, the status says lost and why.
    info = run.launch_info()
    assert len(info["workers"]) == 2
    os.kill(info["torchrun"]["pid"], signal.SIGKILL)
    status = wait_final(run, 60)
    assert not any(procs.is_alive(w) for w in info["workers"]), "a rank outlived torchrun"
    # status.json is the supervisor's last act; it exits right after.
    wait_for(lambda: not procs.is_alive(info["supervisor"]), 10, "the supervisor to exit")
    assert status.state == "lost" and status.exit_code == -signal.SIGKILL and "SIGKILL" in status.reason
    # Nothing of the launch is left in /proc: no process of ours names this run directory.
    leftovers = [st.pid for st in procs.all_stats() if str(run.dir) in " ".join(procs.cmdline(st.pid))
                 and st.state not in ("Z", "X")]
    assert leftovers == []


def test_a_stop_waits_out_a_step_longer_than_the_grace_instead_of_killing_it(tmp_path, tiny_config):
    """The trainer stops at a step boundary. With steps longer than the stop's least grace (here 3 s instead of
    120 s, to keep the test short), a fixed deadline SIGKILLed the run mid-step and lost every step since its last
    checkpoint; the grace now covers twice the run's last step (plus a minute for the checkpoint)."""
    from tui_trainer.runs.launcher import stop_grace, stop_run
    run = RunStore(tmp_path / "runs").launch(config_path=tiny_config(1000, accum=250, hellaswag=False))
    first = wait_for_event(run, lambda e: e["type"] == "step", 240, "the first (slow) step")
    assert first["dt"] > 3.0, first  # each step outlasts the least grace used below
    assert stop_grace(run, 3.0) >= 2 * first["dt"] + 60
    status = stop_run(run, min_timeout=3.0)
    assert status.state == "stopped" and "killed" not in status.reason, status
    end = read_events(run.events_file)[-1]
    assert end["type"] == "run_end" and end["status"] == "stopped"
    assert run.checkpoints()[-1].name == f"step-{end['step']:08d}"  # the stop checkpoint: nothing lost
