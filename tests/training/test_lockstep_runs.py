"""The twins for real: the modular trainer and onefile_train.py as subprocesses (and 2-rank torchrun, gloo) on a
2-layer × 32-wide GPT, CPU, for 20 steps. Same config and seed ⇒ the same numbers and files: per-step losses,
learning rates and gradient norms, validation losses, HellaSwag counts, sample texts, checkpoint contents (each
trainer resumes the other's), event lines field for field.

Not compared (lockstep is the same numbers, not the same plumbing): wall-clock fields (t, dt, tok_per_s), MFU and
the peak FLOP/s behind it (the twin reports none), the trainer's name, checkpoint paths, and the time-driven or
lib-only events (heartbeat, log, system metrics, loss-spike alerts) — and so `seq`, whose contiguity
check_events verifies on each log by itself.

Equality is exact (bitwise) in float32 and also in bfloat16 autocast: the two trainers run the same torch
operations in the same order. If a future change makes the bf16 paths differ on purpose, BF16_TOLERANCE states
how far they may drift.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tui_trainer.training.lib.config import load_config
from tui_trainer.training.lib.shards import ensure_shards

from .harness import REPO, check_events, of_type, read_events, trainer_env, wait_for_event, write_config, write_corpus

pytestmark = pytest.mark.slow

MODULES = {"train": "tui_trainer.training.train", "onefile": "tui_trainer.training.onefile_train"}
# 20 steps; val, HellaSwag, samples and a checkpoint every 10 (and at the end).
STEPS = 20
RUN = (f"schedule.max_steps={STEPS}", "eval.every=10", "eval.hellaswag_every=10", "sample.every=10",
       "checkpoint.every=10")
UNCOMPARED_TYPES = ("heartbeat", "log", "system", "alert")
UNCOMPARED_FIELDS = ("t", "seq", "dt", "tok_per_s", "mfu", "peak_flops", "trainer")
BF16_TOLERANCE = 0.0  # relative; exact today (see the module docstring)

# A tiny HellaSwag in the official format (ctx, four endings, label), enough for counts to be compared.
HELLASWAG = [
    ("A man is standing in a kitchen. He", ["cracks two eggs into a bowl.", "flies over the moon.",
                                            "sings to the fridge loudly.", "paints the ceiling green."], 0),
    ("The girl picks up the violin and", ["eats it slowly.", "begins to play a song.", "throws it into the sea.",
                                          "turns into a bird."], 1),
    ("To change a tire, first", ["bake a cake.", "call the president.", "loosen the lug nuts.", "go to sleep."], 2),
    ("The dog runs across the yard and", ["writes a letter.", "opens a bank account.", "reads the newspaper.",
                                          "catches the ball."], 3),
    ("She opens her laptop and", ["starts typing an email.", "plants a tree.", "swims away.", "melts."], 0),
    ("A chef slices the onions while", ["the car drives itself.", "tears run down his face.",
                                        "the moon explodes.", "a horse sings."], 1),
    ("The students sit down because", ["the class is starting.", "the sky is made of cheese.",
                                       "fish can fly.", "the floor is singing."], 0),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lockstep")
    # MFU's CPU peak is measured once and cached per machine; a private cache holding both dtypes' figures for
    # one thread keeps the two trainers' peak_flops equal and leaves the user's cache alone.
    from tui_trainer.training.lib.peak import CACHE_FILE, cache_key
    cache = root / "xdg" / "gpt-console" / CACHE_FILE
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({cache_key(dtype, 1): 1e11 for dtype in (torch.float32, torch.bfloat16)}))
    config = write_config(root, write_corpus(root), root / "shards")
    ensure_shards(load_config(config))
    with open(root / "hellaswag.jsonl", "w") as f:
        for i, (ctx, endings, label) in enumerate(HELLASWAG):
            f.write(json.dumps({"ind": i, "ctx": ctx, "endings": endings, "label": label}) + "\n")
    return root


def env(workdir: Path) -> dict[str, str]:
    return {**trainer_env(), "XDG_CACHE_HOME": str(workdir / "xdg")}


def argv(trainer: str, workdir: Path, run_dir: Path, overrides, *, nproc: int = 1, resume: bool = False):
    args = ["--config", str(workdir / "tiny.toml"), "--run-dir", str(run_dir),
            "--set", f"eval.hellaswag_path={workdir / 'hellaswag.jsonl'}"]
    for o in overrides:
        args += ["--set", o]
    args += ["--resume"] if resume else []
    if nproc == 1:
        return [sys.executable, "-m", MODULES[trainer], *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", MODULES[trainer], *args, "--set", f"launch.nproc_per_node={nproc}"]


def run(trainer: str, workdir: Path, name: str, overrides=RUN, **kw) -> Path:
    run_dir = workdir / name
    result = subprocess.run(argv(trainer, workdir, run_dir, overrides, **kw), env=env(workdir), cwd=workdir,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir


def comparable(events: list[dict]) -> list[dict]:
    """The events without what may differ between the twins (see the module docstring)."""
    out = []
    for e in events:
        if e["type"] in UNCOMPARED_TYPES:
            continue
        e = {k: v for k, v in e.items() if k not in UNCOMPARED_FIELDS}
        if e["type"] == "checkpoint":
            e["path"] = Path(e["path"]).name
        if e["type"] == "run_start":
            e["config"] = {**e["config"], "launch": {**e["config"]["launch"], "trainer": "-"}}
        out.append(e)
    return out


def state(run_dir: Path, step: int) -> dict:
    return torch.load(run_dir / "checkpoints" / f"step-{step:08d}" / "checkpoint.pt", weights_only=True)


def assert_same_tensors(a, b, ignore=()) -> None:
    """Nested dicts/lists of tensors and plain values, equal bit for bit (top-level keys in ``ignore`` skipped)."""
    if ignore:
        a, b = ({k: v for k, v in x.items() if k not in ignore} for x in (a, b))
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same_tensors(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y)
    else:
        assert a == b


@pytest.fixture(scope="module")
def reference(workdir) -> dict[str, Path]:
    """The same 20-step fp32 run by each trainer."""
    return {trainer: run(trainer, workdir, f"ref-{trainer}") for trainer in MODULES}


def test_single_process_fp32_runs_are_identical(reference):
    lib, ours = read_events(reference["train"]), read_events(reference["onefile"])
    for events in (lib, ours):
        check_events(events)
    assert comparable(ours) == comparable(lib)
    assert of_type(ours, "run_start")[0]["trainer"] == "onefile" and of_type(lib, "run_start")[0]["trainer"] == "train"
    # What the comparison covered: 20 steps that learn, val and HellaSwag at 0/10/20, samples, two checkpoints.
    steps = of_type(ours, "step")
    assert [e["step"] for e in steps] == list(range(STEPS)) and steps[-1]["loss"] < steps[0]["loss"] - 1
    assert [(e["step"], e["total"]) for e in of_type(ours, "hellaswag")] == [(0, 7), (10, 7), (20, 7)]
    assert len(of_type(ours, "sample")) == 3 and all(len(e["texts"]) == 2 for e in of_type(ours, "sample"))
    assert [e["step"] for e in of_type(ours, "checkpoint")] == [10, 20]
    # The checkpoints hold the same weights, optimizer moments, data position and torch RNG state. (Python's and
    # numpy's global generators are saved too, but neither trainer seeds or uses them: they differ per process.)
    for step in (10, 20):
        a, b = state(reference["train"], step), state(reference["onefile"], step)
        assert (a.pop("trainer"), b.pop("trainer")) == ("train", "onefile")
        for rng in a["rng"] + b["rng"]:
            del rng["python"], rng["numpy"]
        assert_same_tensors(a, b)


def test_bf16_runs_are_identical(workdir):
    overrides = RUN[1:] + ("schedule.max_steps=4", "eval.every=4", "eval.hellaswag_every=4", "sample.every=4",
                           "checkpoint.every=4", "system.dtype=bfloat16")
    lib = read_events(run("train", workdir, "bf16-train", overrides))
    ours = read_events(run("onefile", workdir, "bf16-onefile", overrides))
    check_events(ours)
    assert of_type(ours, "run_start")[0]["dtype"] == "bfloat16"
    if BF16_TOLERANCE == 0.0:
        assert comparable(ours) == comparable(lib)
    else:  # pragma: no cover - only if the bf16 paths are made to differ on purpose
        for kind in ("step", "val"):
            for a, b in zip(of_type(ours, kind), of_type(lib, kind), strict=True):
                assert math.isclose(a["loss"], b["loss"], rel_tol=BF16_TOLERANCE)


def test_two_rank_torchrun_runs_are_identical_and_the_launcher_runs_the_onefile(workdir):
    """The modular trainer under torchrun directly; the one-file twin through the console's launcher
    ([launch] trainer = "onefile"), so the launcher's command and environment are exercised too."""
    lib_dir = run("train", workdir, "ddp-train", nproc=2)
    root = workdir / "runs"
    overrides = [f"eval.hellaswag_path={workdir / 'hellaswag.jsonl'}", *RUN, "launch.nproc_per_node=2",
                 "launch.trainer=onefile"]
    result = subprocess.run([sys.executable, "-m", "tui_trainer.cli", "run", str(workdir / "tiny.toml"),
                             "--runs-root", str(root), *[a for o in overrides for a in ("--set", o)]],
                            env=env(workdir), capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    [one_dir] = [p.parent for p in root.glob("*/events.jsonl")]
    launch = json.loads((one_dir / "launch.json").read_text())
    assert "tui_trainer.training.onefile_train" in launch["argv"]
    lib, ours = read_events(lib_dir), read_events(one_dir)
    check_events(ours)
    assert of_type(ours, "run_start")[0]["world_size"] == 2 and len(of_type(ours, "step")) == STEPS
    assert comparable(ours) == comparable(lib)
    assert_same_tensors(state(lib_dir, STEPS)["model"], state(one_dir, STEPS)["model"])


def resumed_part(events: list[dict]) -> list[dict]:
    """The events of the last process (from its run_start)."""
    starts = [i for i, e in enumerate(events) if e["type"] == "run_start"]
    return events[starts[-1]:]


def assert_continues_reference(resumed: list[dict], reference: list[dict], start: int, *, evals_at_start: bool):
    """Every step from ``start`` and every val, HellaSwag and sample after it (at it too when the checkpoint was
    saved before that step's evaluations) equals the uninterrupted run's."""
    def pick(events):
        return [{k: v for k, v in e.items() if k not in ("t", "seq", "dt", "tok_per_s", "mfu")} for e in events
                if e["type"] == "step" and e["step"] >= start or e["type"] in ("val", "hellaswag", "sample")
                and (e["step"] > start or evals_at_start and e["step"] == start)]
    assert pick(resumed) == pick(reference)
    assert [e["step"] for e in of_type(resumed, "step")] == list(range(start, STEPS))


def test_a_modular_checkpoint_resumes_in_the_onefile(workdir, reference):
    run_dir = workdir / "lib-then-onefile"
    shutil.copytree(reference["train"], run_dir)
    shutil.rmtree(run_dir / "checkpoints" / f"step-{STEPS:08d}")
    run("onefile", workdir, run_dir.name, resume=True)
    events = read_events(run_dir)
    check_events(events)  # one log: seq continues across the two trainers
    resumed = resumed_part(events)
    assert resumed[0]["trainer"] == "onefile" and resumed[0]["resumed_from_step"] == 10
    assert_continues_reference(resumed, read_events(reference["train"]), 10, evals_at_start=False)
    assert_same_tensors(state(run_dir, STEPS), state(reference["train"], STEPS), ignore=("trainer", "rng"))


def test_a_sigtermed_onefile_run_resumes_in_the_modular_trainer(workdir, reference):
    run_dir = workdir / "onefile-stopped-then-lib"
    log = open(workdir / "stopped.log", "w")
    proc = subprocess.Popen(argv("onefile", workdir, run_dir, RUN), env=env(workdir), cwd=workdir, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_event(run_dir, lambda e: e["type"] == "run_start", proc=proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    events = read_events(run_dir)
    check_events(events)
    [stop] = [e for e in of_type(events, "checkpoint") if e["reason"] == "stop"]
    assert events[-1]["status"] == "stopped" and events[-1]["reason"] == "signal SIGTERM"
    stopped_at = stop["step"]
    assert 1 <= stopped_at < STEPS
    run("train", workdir, run_dir.name, resume=True)
    events = read_events(run_dir)
    check_events(events)
    resumed = resumed_part(events)
    assert resumed[0]["trainer"] == "train" and resumed[0]["resumed_from_step"] == stopped_at
    # A stop saves before that step's scheduled evaluations, so the resumed run does them: compare from there.
    assert_continues_reference(resumed, read_events(reference["onefile"]), stopped_at, evals_at_start=True)
    assert_same_tensors(state(run_dir, STEPS), state(reference["onefile"], STEPS), ignore=("trainer", "rng"))


def test_the_launcher_prepares_the_shards_the_onefile_trainer_reads(workdir):
    """The twin prepares no data: `gpt-console run` has the supervisor run the preparation first (its progress
    in the run's log), and the twin then trains on those shards. Without shards the twin names the command."""
    fresh = workdir / "fresh-shards"
    config = workdir / "fresh.toml"
    config.write_text((workdir / "tiny.toml").read_text().replace(str(workdir / "shards"), str(fresh)))
    alone = subprocess.run([sys.executable, "-m", MODULES["onefile"], "--config", str(config), "--run-dir",
                            str(workdir / "alone")], env=env(workdir), capture_output=True, text=True, timeout=120)
    assert alone.returncode == 2 and f"gpt-console prepare {config}" in alone.stderr
    assert not fresh.exists()
    root = workdir / "prepared-runs"
    result = subprocess.run([sys.executable, "-m", "tui_trainer.cli", "run", str(config), "--runs-root", str(root),
                             "--set", "launch.trainer=onefile", "--set", "schedule.max_steps=2"],
                            env=env(workdir), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    [run_dir] = [p.parent for p in root.glob("*/events.jsonl")]
    events = read_events(run_dir)
    check_events(events)
    assert (fresh / "manifest.json").is_file() and events[-1]["status"] == "finished"
    assert [e["step"] for e in of_type(events, "step")] == [0, 1]
    assert "preparing files" in (run_dir / "logs" / "trainer.log").read_text()
