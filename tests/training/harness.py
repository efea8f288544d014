"""Running the real trainer in subprocesses on a tiny model, and reading what it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tui_trainer.channel.schema import validate_event

REPO = Path(__file__).resolve().parents[2]

# 2 layers × 32 wide, 32-token context: a step takes tens of milliseconds on one CPU thread.
TINY_TOML = """
[model]
n_layer = 2
n_head = 2
n_embd = 32
block_size = 32
[data]
source = "files"
path = "{corpus}"
shard_dir = "{shards}"
cache_dir = "{cache}"
val_fraction = 0.1
shuffle = true
[optim]
total_batch_size = 256
micro_batch_size = 4
max_lr = 3e-3
[schedule]
warmup_steps = 2
max_steps = 8
[eval]
every = 4
val_steps = 2
hellaswag_every = 0
[sample]
every = 0
count = 2
max_tokens = 8
[checkpoint]
every = 0
keep_last = 3
[system]
device = "cpu"
dtype = "float32"
threads = 1
heartbeat_seconds = 0.5
"""


def write_corpus(directory: Path) -> Path:
    """A real text corpus that ships with Python: its help topics (a few hundred KB), one document each."""
    from pydoc_data.topics import topics
    path = directory / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": topics[k]}) + "\n" for k in sorted(topics)), encoding="utf-8")
    return path


def write_config(directory: Path, corpus: Path, shards: Path) -> Path:
    path = directory / "tiny.toml"
    path.write_text(TINY_TOML.format(corpus=corpus, shards=shards, cache=directory / "cache"))
    return path


def prepared_workdir(tmp_path_factory, name: str) -> Path:
    """A fresh folder with a corpus, its token shards (prepared once by the real data pipeline) and tiny.toml."""
    from tui_trainer.training.lib.config import load_config
    from tui_trainer.training.lib.shards import ensure_shards
    root = tmp_path_factory.mktemp(name)
    ensure_shards(load_config(write_config(root, write_corpus(root), root / "shards")))
    return root


def trainer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("GPT_CONSOLE_RUN_DIR", None)
    env.pop("GPT_CONSOLE_EVENTS", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def trainer_argv(config: Path, run_dir: Path, *overrides: str, nproc: int = 1, resume: bool = False) -> list[str]:
    args = ["--config", str(config), "--run-dir", str(run_dir)]
    for o in overrides:
        args += ["--set", o]
    if resume:
        args.append("--resume")
    if nproc == 1:
        return [sys.executable, "-m", "tui_trainer.training.train", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "tui_trainer.training.train", *args, "--set", f"launch.nproc_per_node={nproc}"]


def run_trainer(config: Path, run_dir: Path, *overrides: str, nproc: int = 1, resume: bool = False,
                timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(trainer_argv(config, run_dir, *overrides, nproc=nproc, resume=resume),
                          env=trainer_env(), cwd=run_dir.parent, capture_output=True, text=True, timeout=timeout)


def start_trainer(config: Path, run_dir: Path, *overrides: str, nproc: int = 1, resume: bool = False,
                  log: Path | None = None) -> subprocess.Popen:
    out = open(log or run_dir.parent / f"{run_dir.name}.log", "w")
    return subprocess.Popen(trainer_argv(config, run_dir, *overrides, nproc=nproc, resume=resume),
                            env=trainer_env(), cwd=run_dir.parent, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def read_events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def wait_for_event(run_dir: Path, predicate, timeout: float = 120, proc: subprocess.Popen | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(run_dir):
            if predicate(event):
                return event
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"trainer exited with {proc.returncode} before the awaited event")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for an event")


def check_events(events: list[dict]) -> None:
    """Every event valid against the schema, seq contiguous from 0, every process ends with run_end (a process
    that fails before starting to train writes run_end without run_start)."""
    for event in events:
        assert validate_event(event) == [], (event, validate_event(event))
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events and events[-1]["type"] == "run_end"
    ends = [i for i, e in enumerate(events) if e["type"] == "run_end"]
    for i, e in enumerate(events):
        if e["type"] == "run_start":
            assert any(j > i for j in ends), "a run_start without its run_end"


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def step_losses(events: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in of_type(events, "step")}


def kill_group(proc: subprocess.Popen) -> None:
    """Clean up after a test: SIGKILL the trainer's whole session (torchrun and any worker left behind)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def signal_ranks(proc: subprocess.Popen, sig: int, nproc: int) -> None:
    """Signal the ranks as the launcher's supervisor does: a lone trainer itself, or torchrun's workers (its
    children) — torchrun signalled itself forwards the signal but then exits 1 whatever its workers did."""
    if nproc == 1:
        proc.send_signal(sig)
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(children) >= nproc:
            for pid in children:
                os.kill(int(pid), sig)
            return
        time.sleep(0.05)
    raise AssertionError(f"torchrun {proc.pid} has not started its {nproc} workers")

