"""One-shot check of a new GPU box: does the trainer's whole CUDA path work here, and how fast is it?

    PYTHONPATH=. python benchmarks/gpu_check.py REPORT_DIR --tiktoken-cache DIR --hellaswag FILE
    PYTHONPATH=. python benchmarks/gpu_check.py REPORT_DIR --smoke   # the same sequence, CPU, tiny model

Needs one CUDA GPU, no network and no install (torch, numpy and tiktoken; never textual). It runs the real
trainer, ``python -m tui_trainer.training.train``, under ``torchrun --nproc_per_node=1`` (so the NCCL process
group, DDP and compile-over-DDP paths run), on the GPT-2 124M preset (configs/gpt2-124m.toml: block 1024,
bf16, flash SDPA, fused AdamW) with data from the embedded corpus (Python's own docs) or ``--text FILE``:

1. environment: Python, torch, CUDA, cuDNN, NCCL, the GPU's name and memory, its dense bf16 peak
   (lib/metrics.py);
2. compiled run: step 0 validation + HellaSwag + sample, then training with a checkpoint at step K;
3. once a few steps past K are logged, the whole torchrun process group is SIGKILLed;
4. resume from the checkpoint (``--resume``): the steps after K must repeat the killed run's losses (bf16
   tolerance), then validation, HellaSwag (a few hundred examples) and a sample at the end;
5. the same model eagerly (no compile): tok/s for the compile ratio, and its losses against the compiled ones.

Figures (tok/s, MFU, step time, peak memory: the median over the timed steps of the trainer's own ``step`` and
``system`` events) and every check's outcome go to REPORT_DIR/report.json and report.md; the exit code is 0
when every check passed. Trainer logs and run directories stay in REPORT_DIR/work. Meant to take 4-6 minutes
on one H100 (not yet measured on one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESUME_REL_TOL = 1e-2   # bf16 rounds to 8 bits (2^-8 ≈ 0.4 %); GPU reductions may differ run to run
COMPILE_REL_TOL = 2e-2  # compiled vs eager: different fusions round differently, for a few steps only
TARGET_MFU = 0.45
TARGET_WALL_S = 8 * 60


@dataclass
class Plan:
    """What the check runs; the GPU plan and the smoke plan differ only in sizes and the device."""
    smoke: bool
    base_config: Path
    sets: list[str]
    steps: int              # compiled run length
    checkpoint_at: int      # the checkpoint the resume starts from
    kill_after: int         # SIGKILL once this step is logged (a few steps past checkpoint_at)
    eager_steps: int
    timed_from: int         # steps before this one (compile, warm-up) are not timed
    run_timeout_s: float
    notes: list[str] = field(default_factory=list)


def make_plan(args: argparse.Namespace, work: Path) -> Plan:
    data = ([f"data.source=files", f"data.path={json.dumps(str(Path(args.text).resolve()))}"] if args.text
            else ["data.source=embedded"])
    common = [*data, f"data.cache_dir={json.dumps(str(work / 'cache'))}", "data.shard_dir=''",
              "launch.nproc_per_node=1", "checkpoint.resume=never", "checkpoint.keep_last=2",
              f"eval.hellaswag_path={json.dumps(str(Path(args.hellaswag).resolve()))}",
              f"eval.hellaswag_examples={args.hellaswag_examples}", "sample.count=2", "sample.max_tokens=32",
              "system.compile=true", "system.log_every=1"]
    if args.smoke:
        sets = [*common, "model.n_layer=2", "model.n_head=2", "model.n_embd=64", "model.block_size=64",
                "optim.micro_batch_size=4", "optim.total_batch_size=256", "schedule.warmup_steps=2",
                "system.device=cpu", "system.dtype=auto", "eval.val_steps=2", "system.threads=0"]
        return Plan(True, REPO / "configs" / "default.toml", sets, steps=30, checkpoint_at=16, kill_after=19,
                    eager_steps=6, timed_from=2, run_timeout_s=300)
    micro = args.micro_batch
    # The embedded corpus is ~0.9M tokens; 5 % held out (~29K) is less than one 1024-token micro-batch of 32.
    val = [] if args.text else ["data.val_fraction=0.15"]
    sets = [*common, *val, f"optim.micro_batch_size={micro}", f"optim.total_batch_size={micro * 1024}",
            "schedule.warmup_steps=10", "system.device=auto", "system.dtype=auto", "eval.val_steps=2"]
    # The checkpoint lies past half the run, so it is the only one before the kill (the resume takes the
    # newest), and the kill leaves many steps to go, so the run cannot end before the kill lands.
    k = args.steps * 11 // 20
    return Plan(False, REPO / "configs" / "gpt2-124m.toml", sets, steps=args.steps, checkpoint_at=k,
                kill_after=k + 6, eager_steps=25, timed_from=10, run_timeout_s=420)


# ------------------------------------------------------------------------------------------ environment
def environment(smoke: bool) -> dict:
    import torch
    from tui_trainer.training.lib.metrics import device_name, peak_flops
    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if smoke or not torch.cuda.is_available():
        env["device"] = device_name(torch.device("cpu"))
        return env
    props = torch.cuda.get_device_properties(0)
    env.update(device=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
               capability=f"{props.major}.{props.minor}", gpu_count=torch.cuda.device_count(),
               cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported(),
               nccl=_nccl_version(torch),
               peak_bf16_flops=peak_flops(props.name, "cuda", torch.bfloat16, True))
    return env


def _nccl_version(torch) -> str | None:
    try:
        version = torch.cuda.nccl.version()
    except Exception:  # noqa: BLE001 - a build without NCCL
        return None
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def metrics_sets(plan: Plan) -> list[str]:
    """Ask for `system` events (peak memory) often, where this trainer has them."""
    from tui_trainer.training.lib.config import load_config
    has_metrics = hasattr(load_config(plan.base_config, plan.sets).system, "metrics_seconds")
    return ["system.metrics_seconds=2"] if has_metrics else []


# ------------------------------------------------------------------------------------------ running
def child_env(args: argparse.Namespace, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["TIKTOKEN_CACHE_DIR"] = str(Path(args.tiktoken_cache).resolve())
    env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor-cache")  # cold for the first run, warm for resume
    env.pop("GPT_CONSOLE_RUN_DIR", None)
    env.pop("GPT_CONSOLE_EVENTS", None)
    if args.smoke:
        env.setdefault("OMP_NUM_THREADS", str(max(1, os.cpu_count() or 1)))
    return env


def trainer_argv(plan: Plan, run_dir: Path, sets: list[str], resume: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
            "-m", "tui_trainer.training.train", "--config", str(plan.base_config), "--run-dir", str(run_dir)]
    for s in [*plan.sets, *sets]:
        argv += ["--set", s]
    return argv + (["--resume"] if resume else [])


def read_events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # the line a SIGKILL cut short
    return events


class RunFailed(RuntimeError):
    """A check's training run exited non-zero or wrote no usable events; the report says which and why."""


def run_trainer(argv: list[str], env: dict, log: Path, timeout: float, run_dir: Path,
                kill_at_step: int | None = None) -> float:
    """Run one trainer (torchrun) to its end, or SIGKILL its process group once ``kill_at_step`` is logged.
    Returns wall seconds; raises RunFailed on a non-zero exit, a timeout or a missed kill point."""
    start = time.monotonic()
    with log.open("w") as out:
        out.write("$ " + shlex.join(argv) + "\n")
        out.flush()
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while proc.poll() is None:
                if time.monotonic() - start > timeout:
                    raise RunFailed(f"no end after {timeout:.0f} s; see {log}")
                if kill_at_step is not None and any(e.get("type") == "step" and e["step"] >= kill_at_step
                                                    for e in read_events(run_dir)):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return time.monotonic() - start
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        errors = [e["message"] for e in read_events(run_dir) if e.get("type") == "error"]
        raise RunFailed(f"exit code {proc.returncode}: {errors[-1] if errors else _tail(log)} (log: {log})")
    if kill_at_step is not None:
        raise RunFailed(f"the run ended before step {kill_at_step} was logged; see {log}")
    return time.monotonic() - start


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ------------------------------------------------------------------------------------------ reading runs
def split_processes(events: list[dict]) -> list[list[dict]]:
    """The events of each trainer process that wrote to the log, in order (each begins with run_start)."""
    parts: list[list[dict]] = [[]]
    for e in events:
        if e.get("type") == "run_start" and any(x.get("type") == "run_start" for x in parts[-1]):
            parts.append([])
        parts[-1].append(e)  # what a process logs before its run_start (data preparation) stays with it
    return parts


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("type") == kind]


def speed(events: list[dict], timed_from: int, until: int | None = None) -> dict:
    steps = [e for e in of_type(events, "step")
             if e["step"] >= timed_from and (until is None or e["step"] < until)]
    if not steps:
        return {}
    mfus = [e["mfu"] for e in steps if e.get("mfu") is not None]
    peaks = [r.get("torch_max_memory_allocated_bytes") for s in of_type(events, "system") for r in s["ranks"]]
    peaks = [p for p in peaks if p]
    return {"timed_steps": len(steps), "tok_per_s": statistics.median(e["tok_per_s"] for e in steps),
            "step_ms": 1e3 * statistics.median(e["dt"] for e in steps),
            "mfu": statistics.median(mfus) if mfus else None,
            "peak_memory_gib": max(peaks) / 2**30 if peaks else None}


def max_rel_diff(a: dict[int, float], b: dict[int, float]) -> float:
    return max(abs(a[k] - b[k]) / abs(b[k]) for k in a)


# ------------------------------------------------------------------------------------------ the check
class Report:
    def __init__(self) -> None:
        self.checks: list[dict] = []
        self.figures: dict = {}

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}", flush=True)
        return ok


def run_check(args: argparse.Namespace, out: Path) -> dict:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args, work)
    env = child_env(args, work)
    report = Report()
    started = time.monotonic()
    result: dict = {"mode": "smoke (CPU, tiny model)" if plan.smoke else "gpu",
                    "command": shlex.join([sys.executable, *sys.argv]),
                    "plan": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(plan).items()}}
    result["environment"] = environment(plan.smoke)
    print(json.dumps(result["environment"], indent=1), flush=True)
    if not plan.smoke and not result["environment"]["cuda_available"]:
        report.check("cuda", False, "this torch sees no CUDA GPU (use --smoke for the CPU sequence)")
        return _finish(result, report, started)

    compiled_dir, eager_dir = work / "compiled", work / "eager"
    sched = [f"schedule.max_steps={plan.steps}", f"checkpoint.every={plan.checkpoint_at}",
             f"eval.every={plan.steps}", f"eval.hellaswag_every={plan.steps}", f"sample.every={plan.steps}",
             *metrics_sets(plan)]
    try:
        wall = run_trainer(trainer_argv(plan, compiled_dir, sched), env, work / "compiled.log",
                           plan.run_timeout_s, compiled_dir, kill_at_step=plan.kill_after)
        result["compiled_until_kill_s"] = wall
        report.check("killed", True, f"compiled run SIGKILLed after step {plan.kill_after} was logged "
                                     f"({wall:.0f} s from launch, data preparation and compile included)")
        wall = run_trainer(trainer_argv(plan, compiled_dir, sched, resume=True), env, work / "resumed.log",
                           plan.run_timeout_s, compiled_dir)
        result["resumed_s"] = wall
    except RunFailed as e:
        report.check("compiled run", False, str(e))
        return _finish(result, report, started)
    killed, resumed = (split_processes(read_events(compiled_dir)) + [[], []])[:2]
    _judge_compiled(plan, killed, resumed, report, result)

    eager_sched = [f"schedule.max_steps={plan.eager_steps}", "system.compile=false", "eval.every=0",
                   "eval.hellaswag_every=0", "sample.every=0", "checkpoint.every=0", *metrics_sets(plan)]
    try:
        result["eager_s"] = run_trainer(trainer_argv(plan, eager_dir, eager_sched), env, work / "eager.log",
                                        plan.run_timeout_s, eager_dir)
    except RunFailed as e:
        report.check("eager run", False, str(e))
        return _finish(result, report, started)
    eager = read_events(eager_dir)
    _judge_eager(plan, killed, eager, report, result)
    return _finish(result, report, started)


def _judge_compiled(plan: Plan, killed: list[dict], resumed: list[dict], report: Report,
                    result: dict) -> None:
    start = (of_type(killed, "run_start") or [{}])[0]
    result["run_start"] = {k: start.get(k) for k in ("device", "device_name", "dtype", "world_size", "params",
                                                    "peak_flops", "grad_accum_steps")}
    report.check("process group", start.get("world_size") == 1,
                 f"torchrun --nproc_per_node=1: world_size {start.get('world_size')}, "
                 f"device {start.get('device')}, dtype {start.get('dtype')}")
    before = {e["step"]: e["loss"] for e in of_type(killed, "step")}
    ckpts = [c["step"] for c in of_type(killed, "checkpoint")]
    report.check("checkpoint", ckpts == [plan.checkpoint_at], f"checkpoints before the kill at steps {ckpts}")
    first, last = [before.get(i) for i in range(3)], [before.get(i) for i in range(plan.kill_after - 2,
                                                                                    plan.kill_after + 1)]
    if None not in first + last:
        report.check("loss falls", sum(last) < sum(first) - 0.3,
                     f"mean loss of steps 0-2 {sum(first) / 3:.3f} -> steps {plan.kill_after - 2}-"
                     f"{plan.kill_after} {sum(last) / 3:.3f}")
    figures = speed(killed, plan.timed_from, until=plan.checkpoint_at)
    first_dt = [e["dt"] for e in of_type(killed, "step") if e["step"] == 0]
    result["compiled"] = {**figures, "first_step_s": first_dt[0] if first_dt else None}
    rstart = (of_type(resumed, "run_start") or [{}])[0]
    again = {e["step"]: e["loss"] for e in of_type(resumed, "step") if e["step"] in before}
    expected = set(range(plan.checkpoint_at, plan.kill_after + 1))
    if rstart.get("resumed_from_step") == plan.checkpoint_at and set(again) >= expected:
        diff = max_rel_diff({k: again[k] for k in expected}, before)
        report.check("resume", diff <= RESUME_REL_TOL,
                     f"resumed from step {plan.checkpoint_at}; steps {min(expected)}-{max(expected)} repeat "
                     f"the killed run's losses to {diff:.1e} relative (tolerance {RESUME_REL_TOL:g})")
    else:
        report.check("resume", False,
                     f"resumed_from_step {rstart.get('resumed_from_step')}, steps {sorted(again)}")
    end = (of_type(resumed, "run_end") or [{}])[-1]
    report.check("run end", end.get("status") == "finished" and end.get("step") == plan.steps,
                 f"the resumed run ended '{end.get('status')}' at step {end.get('step')}")
    vals = {e["step"]: e["loss"] for e in of_type(killed + resumed, "val")}
    report.check("validation", set(vals) >= {0, plan.steps} and vals[plan.steps] < vals[0],
                 "val loss " + ", ".join(f"step {k}: {v:.3f}" for k, v in sorted(vals.items())))
    hs = of_type(killed + resumed, "hellaswag")
    report.check("hellaswag", [h["step"] for h in hs] == [0, plan.steps] and all(h["total"] > 0 for h in hs),
                 "; ".join(f"step {h['step']}: acc_norm {h['acc_norm']:.3f} on {h['total']} examples"
                           for h in hs) or "no hellaswag event (see the log warnings)")
    samples = of_type(resumed, "sample")
    report.check("sample", bool(samples) and all(isinstance(t, str) and t for t in samples[-1]["texts"]),
                 repr(samples[-1]["texts"][0][:120]) if samples else "no sample event")
    result["val"], result["hellaswag"] = vals, hs
    result["sample"] = samples[-1]["texts"] if samples else None
    warnings = [e["message"] for e in of_type(killed + resumed, "log") if e.get("level") != "info"]
    result["warnings"] = warnings
    report.figures["compiled"] = result["compiled"]


def _judge_eager(plan: Plan, killed: list[dict], eager: list[dict], report: Report, result: dict) -> None:
    figures = speed(eager, min(plan.timed_from, plan.eager_steps - 3))
    result["eager"] = figures
    end = (of_type(eager, "run_end") or [{}])[-1]
    report.check("eager run", end.get("status") == "finished", f"ended '{end.get('status')}'")
    # The first steps only: same weights and data, so only the kernels differ; later, training amplifies the
    # different roundings (chaotically at a tiny model's high learning rate) and says nothing more.
    compiled = {e["step"]: e["loss"] for e in of_type(killed, "step") if e["step"] < 3}
    losses = {e["step"]: e["loss"] for e in of_type(eager, "step") if e["step"] in compiled}
    if losses:
        diff = max_rel_diff(losses, compiled)
        report.check("compile = eager", diff <= COMPILE_REL_TOL,
                     f"steps 0-{max(losses)}: compiled losses equal the eager ones to {diff:.1e} relative "
                     f"(tolerance {COMPILE_REL_TOL:g})")
    c, e = result.get("compiled", {}), figures
    if c.get("tok_per_s") and e.get("tok_per_s"):
        result["compile_speedup"] = c["tok_per_s"] / e["tok_per_s"]


def _finish(result: dict, report: Report, started: float) -> dict:
    result["wall_s"] = time.monotonic() - started
    result["checks"] = report.checks
    result["ok"] = bool(report.checks) and all(c["ok"] for c in report.checks)
    targets = []
    mfu = result.get("compiled", {}).get("mfu")
    if result["mode"] == "gpu":
        targets.append({"target": f"MFU >= {TARGET_MFU:.0%} (bf16 + compile, dense bf16 peak)",
                        "met": mfu is not None and mfu >= TARGET_MFU,
                        "value": f"{mfu:.1%}" if mfu is not None else "unknown (GPU not in lib/metrics.py)"})
        targets.append({"target": f"whole check under {TARGET_WALL_S // 60} min", "met": result["wall_s"] <
                        TARGET_WALL_S, "value": f"{result['wall_s']:.0f} s"})
    result["targets"] = targets
    return result


# ------------------------------------------------------------------------------------------ report
def render_markdown(r: dict) -> str:
    env = r["environment"]
    lines = [f"# GPU check ({r['mode']}): {'PASSED' if r['ok'] else 'FAILED'}", "",
             f"Command: `{r['command']}`  ", f"Whole check: {r['wall_s']:.0f} s", "", "## Environment", "",
             "| what | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env.items()]
    lines += ["", "## Speed (median over the timed steps; the trainer's own step events)", "",
              "| run | tok/s | step ms | MFU | peak memory GiB | first step s |", "|---|---|---|---|---|---|"]
    for name in ("compiled", "eager"):
        f = r.get(name) or {}
        if f:
            lines.append(f"| {name} | {_fmt(f.get('tok_per_s'), ',.0f')} | {_fmt(f.get('step_ms'), '.1f')} | "
                         f"{_fmt(f.get('mfu'), '.1%')} | {_fmt(f.get('peak_memory_gib'), '.2f')} | "
                         f"{_fmt(f.get('first_step_s'), '.1f')} |")
    if r.get("compile_speedup"):
        lines.append(f"\ncompiled / eager tok/s: {r['compile_speedup']:.2f}x")
    lines += ["", "## Checks", "", "| check | ok | detail |", "|---|---|---|"]
    lines += [f"| {c['check']} | {'yes' if c['ok'] else '**NO**'} | {c['detail']} |" for c in r["checks"]]
    if r["targets"]:
        lines += ["", "## Targets", "", "| target | met | value |", "|---|---|---|"]
        lines += [f"| {t['target']} | {'yes' if t['met'] else 'no'} | {t['value']} |" for t in r["targets"]]
    if r.get("sample"):
        lines += ["", "## Sample (last)", "", "```", *r["sample"], "```"]
    if r.get("warnings"):
        lines += ["", "## Trainer warnings", ""] + [f"- {w}" for w in r["warnings"]]
    return "\n".join(lines) + "\n"


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


# ------------------------------------------------------------------------------------------ entry
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("report_dir", help="where report.json, report.md and work/ (logs, runs) are written")
    p.add_argument("--smoke", action="store_true", help="the same sequence on the CPU with a tiny model")
    p.add_argument("--tiktoken-cache", default=os.environ.get("TIKTOKEN_CACHE_DIR") or _beside("tiktoken"),
                   help="directory with tiktoken's cached GPT-2 BPE files (default: $TIKTOKEN_CACHE_DIR)")
    p.add_argument("--hellaswag", default=_beside("data/hellaswag_val.jsonl.gz"),
                   help="local hellaswag_val.jsonl (or .jsonl.gz)")
    p.add_argument("--hellaswag-examples", type=int, default=0, help="default: 300 (GPU), 20 (--smoke)")
    p.add_argument("--text", help="train on these files (data.source = 'files': a .jsonl of {\"text\": ...} "
                                  "lines, or a directory of .txt documents); default: the embedded corpus")
    p.add_argument("--micro-batch", type=int, default=32, help="sequences of 1024 tokens per step (GPU)")
    p.add_argument("--steps", type=int, default=80, help="compiled run length (GPU); checkpoint at half")
    args = p.parse_args(argv)
    args.hellaswag_examples = args.hellaswag_examples or (20 if args.smoke else 300)
    return args


def _beside(relative: str) -> str | None:
    path = SHARED / relative
    return str(path) if path.exists() else None


def preflight(args: argparse.Namespace) -> str | None:
    """One clear message for a missing input, before anything is launched."""
    if not args.tiktoken_cache or not Path(args.tiktoken_cache).is_dir():
        return ("The GPT-2 tokenizer must load offline: pass --tiktoken-cache DIR (or set "
                "TIKTOKEN_CACHE_DIR) to a directory holding tiktoken's cached GPT-2 files.")
    if not args.hellaswag or not Path(args.hellaswag).is_file():
        return "Pass --hellaswag FILE: a local hellaswag_val.jsonl or .jsonl.gz (the check needs no network)."
    if args.text and not Path(args.text).exists():
        return f"--text {args.text}: no such file."
    os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(args.tiktoken_cache).resolve())
    from tui_trainer.training.lib.tokenizer import TokenizerUnavailable, get_tokenizer
    try:
        get_tokenizer()
    except TokenizerUnavailable as e:
        return str(e)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = preflight(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    out = Path(args.report_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    result = run_check(args, out)
    (out / "report.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(result), encoding="utf-8")
    verdict = "PASSED" if result["ok"] else "FAILED"
    print(f"\n{verdict} in {result['wall_s']:.0f} s; report: {out / 'report.md'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
