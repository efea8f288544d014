"""Trainer speed, side by side: the reference GPT-2 loop against our trainer, on the same machine in one run.

    python -m benchmarks.train_bench                      # bench config, every variant, 20 timed steps each
    python -m benchmarks.train_bench --variants ref,ours --steps 30 --rounds 2
    python -m benchmarks.train_bench --config configs/gpt2-124m.toml \\
        --set optim.micro_batch_size=1 --set optim.total_batch_size=1024 --variants ours,ours-fp32

Every variant runs in its own fresh process (so compile caches, allocator state, thread pools and peak memory
are its own): the ``ref*`` variants run ``benchmarks/reference_gpt2.py`` (build-nanogpt's loop, independent of
our code: ``ref`` is upstream's step exactly, ``ref-compile`` and ``ref-fp32`` are our variants of it); the
``ours*`` variants run the real trainer, ``python -m tui_trainer.training.train``, with the config plus the variant's overrides, and read its own ``step`` events — so the tok/s shown here is the trainer's own
figure, and eval/sampling/checkpoint time is excluded the same way the trainer excludes it.

Per variant: median tok/s over the timed steps (after ``--warmup`` steps), TFLOP/s (FLOPs per token from
``flops_per_token``: 6N + 12·L·T·C), MFU against this CPU's measured peak for the variant's dtype (lib/peak.py),
step-time spread, first-step time (includes torch.compile), peak RSS of the process, and the loss at the last
step next to its fp32 twin's (same code, same data, same seed), to show the fast path trains the same model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_TEXT = SHARED / "data" / "tinyshakespeare.txt"


@dataclass
class Variant:
    name: str
    kind: str                      # "ref" (reference_gpt2.py) or "ours" (the trainer)
    dtype: str                     # autocast dtype the variant trains in
    args: list[str] = field(default_factory=list)   # reference flags, or trainer --set overrides
    env: dict[str, str] = field(default_factory=dict)
    fp32_twin: str | None = None   # the variant whose losses this one should match
    about: str = ""
    module: str = "tui_trainer.training.train"  # the trainer an "ours" variant runs


def cpu_dtype_default() -> str:
    from tui_trainer.training.lib.precision import resolve_dtype
    import torch
    return str(resolve_dtype("auto", torch.device("cpu"))).removeprefix("torch.")


def variants() -> dict[str, Variant]:
    ours_dtype = cpu_dtype_default()
    vs = [
        Variant("ref", "ref", "bfloat16", ["--dtype", "bfloat16"], fp32_twin="ref-fp32",
                about="build-nanogpt's step as upstream runs it (bf16 autocast, matmul precision high, "
                      "eager)"),
        Variant("ref-compile", "ref", "bfloat16", ["--dtype", "bfloat16", "--compile"], fp32_twin="ref-fp32",
                about="ours, not upstream: that step + torch.compile (upstream leaves use_compile off)"),
        Variant("ref-fp32", "ref", "float32", ["--dtype", "float32"],
                about="ours, not upstream: that step without autocast (fp32)"),
        Variant("ours", "ours", ours_dtype, [], fp32_twin="ours-fp32", about="trainer, default CPU settings"),
        Variant("ours-fp32", "ours", "float32", ["system.dtype=float32"], about="trainer, fp32"),
        Variant("ours-compile", "ours", ours_dtype, ["system.compile=true"], fp32_twin="ours-fp32",
                about="trainer, defaults + torch.compile"),
        Variant("onefile", "ours", ours_dtype, [], fp32_twin="ours-fp32", module=ONEFILE,
                about="the one-file twin, default CPU settings"),
        Variant("onefile-fp32", "ours", "float32", ["system.dtype=float32"], module=ONEFILE,
                about="the one-file twin, fp32"),
    ]
    return {v.name: v for v in vs}


DEFAULT_VARIANTS = "ref,ref-compile,ref-fp32,ours,ours-fp32,ours-compile"
ONEFILE = "tui_trainer.training.onefile_train"


# ------------------------------------------------------------------------------------------ running
def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    if "TIKTOKEN_CACHE_DIR" not in env and (SHARED / "tiktoken").is_dir():
        env["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def run_process(argv: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """Run to completion with output in ``log``; (exit code, wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    return proc.returncode, time.perf_counter() - start, rss_mb


def run_reference(v: Variant, cfg, total_steps: int, text: Path, work: Path) -> list[dict]:
    out = work / f"{v.name}.json"
    m = cfg.model
    argv = [sys.executable, str(REPO / "benchmarks" / "reference_gpt2.py"), *v.args,
            "--steps", str(total_steps), "--json", str(out), "--data", str(text),
            "--n-layer", str(m.n_layer), "--n-head", str(m.n_head), "--n-embd", str(m.n_embd),
            "--block-size", str(m.block_size), "--vocab-size", str(m.vocab_size),
            "--batch", str(cfg.optim.micro_batch_size),
            "--grad-accum", str(cfg.optim.total_batch_size // (cfg.optim.micro_batch_size * m.block_size)),
            "--warmup-steps", str(cfg.schedule.warmup_steps), "--max-steps", str(cfg.schedule.max_steps)]
    code, wall, rss = run_process(argv, child_env(v.env), work / f"{v.name}.log")
    if code != 0:
        raise RuntimeError(f"{v.name} failed (exit {code}); see {work / f'{v.name}.log'}")
    return json.loads(out.read_text()), wall, rss


def run_ours(v: Variant, config: Path, overrides: list[str], total_steps: int, work: Path, nproc: int):
    run_dir = work / v.name
    sets = [*overrides, *v.args, f"launch.nproc_per_node={nproc}"]
    trainer = ["-m", v.module, "--config", str(config), "--run-dir", str(run_dir)]
    for s in sets:
        trainer += ["--set", s]
    if v.module == ONEFILE:  # the twin only reads shards: prepare them first, untimed (at once if they exist)
        prepare = [sys.executable, "-m", "tui_trainer.training.prepare", *trainer[2:4], *trainer[6:]]
        subprocess.run(prepare, env=child_env({}), check=True, stdout=subprocess.DEVNULL)
    if nproc > 1:
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *trainer]
    else:
        argv = [sys.executable, *trainer]
    # as the launcher does: the CPU's cores shared among the ranks
    env = child_env({"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc)), **v.env})
    code, wall, rss = run_process(argv, env, work / f"{v.name}.log")
    if code != 0:
        raise RuntimeError(f"{v.name} failed (exit {code}); see {work / f'{v.name}.log'}")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    steps = [e for e in events if e["type"] == "step"]
    reported_mfu = [e.get("mfu") for e in steps]
    return ([{"step": e["step"], "loss": e["loss"], "dt": e["dt"], "tokens": int(round(e["tok_per_s"] * e["dt"])),
              "mfu": m} for e, m in zip(steps, reported_mfu)], wall, rss)


# ------------------------------------------------------------------------------------------ report
def summarise(records: list[dict], warmup: int, fpt: int, peak: float | None) -> dict:
    timed = records[warmup:]
    if not timed:
        raise RuntimeError("no timed steps: raise --steps or lower --warmup")
    dts = sorted(r["dt"] for r in timed)
    tokens = timed[0]["tokens"]
    med = statistics.median(dts)
    tok_s = tokens / med
    reported = [r["mfu"] for r in timed if r.get("mfu") is not None]
    return {
        "tok_s": tok_s, "tflops": fpt * tok_s / 1e12, "mfu": fpt * tok_s / peak if peak else None,
        "trainer_mfu": statistics.median(reported) if reported else None,
        "dt_med": med, "dt_min": dts[0], "dt_max": dts[-1],
        "dt_p10": dts[len(dts) // 10], "dt_p90": dts[min(len(dts) - 1, (len(dts) * 9) // 10)],
        "first": records[0]["dt"], "losses": [r["loss"] for r in records], "steps": len(timed),
    }


def machine_summary(threads: int) -> str:
    import torch
    from tui_trainer.training.lib.peak import cpu_model
    return (f"{cpu_model()}, {os.cpu_count()} logical CPUs, {threads} torch threads, torch {torch.__version__}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "bench.toml"))
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="config override for every variant (the reference takes the model/batch dims)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated; known: {DEFAULT_VARIANTS}")
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile happens here)")
    p.add_argument("--rounds", type=int, default=1, help="repeat all variants, interleaved, and report each "
                                                          "variant's fastest round (other load only slows rounds)")
    p.add_argument("--nproc", type=int, default=0, help="ranks for the 'ours' variants (torchrun if > 1; "
                                                         "default: the config's launch.nproc_per_node)")
    p.add_argument("--data", default=str(DEFAULT_TEXT), help="Tiny Shakespeare text for the bench config")
    p.add_argument("--work-dir", help="keep logs and run dirs here (default: a temporary directory)")
    p.add_argument("--json", help="write all results to this JSON file")
    p.add_argument("--refresh-peak", action="store_true", help="re-run the CPU peak probe instead of the cache")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="LOAD",
                   help="before each variant, wait (up to 10 min) until the 1-minute load average is below LOAD")
    args = p.parse_args(argv)

    import torch
    from tui_trainer.training.lib.config import flops_per_token, load_config
    from tui_trainer.training.lib.peak import cpu_peak_flops

    text = Path(args.data)
    total_steps = args.warmup + args.steps
    overrides = list(args.set)
    # The run is exactly the benchmarked steps long; both loops follow the same learning-rate schedule.
    warmup_lr = min(load_config(args.config, overrides).schedule.warmup_steps, total_steps)
    overrides += [f"schedule.max_steps={total_steps}", f"schedule.warmup_steps={warmup_lr}"]
    cfg = load_config(args.config, overrides)
    if cfg.data.source == "shakespeare" and not cfg.data.path:
        overrides.append(f"data.path={json.dumps(str(text))}")
    args.nproc = args.nproc or cfg.launch.nproc_per_node
    fpt = flops_per_token(cfg)
    known = variants()
    chosen = [known[name.strip()] for name in args.variants.split(",") if name.strip()]
    threads = torch.get_num_threads()
    # The job's peak: ranks × one rank's peak with its share of the threads (the reference is one process).
    peaks = {(v.dtype, ranks): cpu_peak_flops(getattr(torch, v.dtype), threads=max(1, threads // ranks),
                                              refresh=args.refresh_peak) * ranks
             for v in chosen for ranks in [args.nproc if v.kind == "ours" else 1]}
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="train-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    print(f"machine: {machine_summary(threads)}")
    print(f"config:  {args.config} {' '.join(shlex.quote(s) for s in args.set)}".rstrip())
    m = cfg.model
    print(f"model:   {m.n_layer} layers, {m.n_head} heads, {m.n_embd} wide, block {m.block_size}, vocab "
          f"{m.vocab_size}; batch {cfg.optim.micro_batch_size}×{m.block_size} = "
          f"{cfg.optim.micro_batch_size * m.block_size} tokens/micro-step; {fpt / 1e6:.1f} MFLOP/token")
    print("peak:    " + ", ".join(f"{d} × {r} rank(s) {f / 1e12:.3f} TFLOP/s" for (d, r), f in sorted(peaks.items()))
          + " (lib/peak.py matmul probe, cached)")
    print(f"steps:   {args.warmup} warm-up + {args.steps} timed per variant, {args.rounds} round(s); logs in {work}")
    print(flush=True)

    results: dict[str, list[dict]] = {v.name: [] for v in chosen}
    for rnd in range(args.rounds):
        for v in chosen:
            rdir = work / f"round{rnd}"
            rdir.mkdir(exist_ok=True)
            if args.wait_quiet:
                wait_for_quiet(args.wait_quiet)
            load_before = os.getloadavg()[0]
            if v.kind == "ref":
                records, wall, rss = run_reference(v, cfg, total_steps, text, rdir)
            else:
                records, wall, rss = run_ours(v, Path(args.config), overrides, total_steps, rdir, args.nproc)
            s = summarise(records, args.warmup, fpt, peaks[(v.dtype, args.nproc if v.kind == "ours" else 1)])
            s.update(wall=wall, rss_mb=rss, load=(load_before, os.getloadavg()[0]))
            results[v.name].append(s)
            print(f"  round {rnd + 1} {v.name:18s} {s['tok_s']:8,.0f} tok/s  median step {s['dt_med'] * 1e3:7.1f} ms "
                  f"(process {wall:5.1f} s, load average {s['load'][0]:.1f} → {s['load'][1]:.1f})", flush=True)

    merged = {name: _merge(runs) for name, runs in results.items()}
    print()
    print(render_table(chosen, merged, args.steps))
    print()
    print(render_losses(chosen, merged))
    print()
    print(render_ratios(chosen, merged))
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "set": args.set,
                                               "peaks": {f"{d}x{r}": f for (d, r), f in peaks.items()},
                                               "results": results}, indent=1))
    return 0


def wait_for_quiet(limit: float, max_wait: float = 600.0) -> None:
    """Other jobs on a shared machine distort timings; give them a chance to finish first."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(5)


def _merge(runs: list[dict]) -> dict:
    """The fastest round's figures (other jobs on the machine can only slow a round down, so the fastest is
    the least disturbed), with every round's tok/s kept for the table. Losses are deterministic: any round's."""
    best = dict(max(runs, key=lambda r: r["tok_s"]))
    best["rounds_tok_s"] = [r["tok_s"] for r in runs]
    return best


def render_table(chosen: list[Variant], merged: dict[str, dict], steps: int) -> str:
    head = (f"| variant | tok/s | TFLOP/s | MFU (of its dtype's peak) | step ms: median [p10–p90] (min–max) | first step s | "
            f"peak RSS MB | tok/s of each round | what |")
    lines = [head, "|" + "---|" * 9]
    for v in chosen:
        s = merged[v.name]
        mfu = f"{s['mfu'] * 100:.1f}%" if s["mfu"] is not None else "n/a"
        if s.get("trainer_mfu") is not None:  # the trainer's own step events, to show they agree
            mfu += f" (trainer says {s['trainer_mfu'] * 100:.1f}%)"
        lines.append(
            f"| {v.name} | {s['tok_s']:,.0f} | {s['tflops']:.3f} | {mfu} | {s['dt_med'] * 1e3:.0f} "
            f"[{s['dt_p10'] * 1e3:.0f}–{s['dt_p90'] * 1e3:.0f}] ({s['dt_min'] * 1e3:.0f}–{s['dt_max'] * 1e3:.0f}) | "
            f"{s['first']:.1f} | {s['rss_mb']:,.0f} | {' / '.join(f'{t:,.0f}' for t in s['rounds_tok_s'])} | "
            f"{v.about} |")
    return "\n".join(lines)


def render_losses(chosen: list[Variant], merged: dict[str, dict]) -> str:
    lines = ["losses (same code, data and seed as the fp32 twin; bf16 accuracy ≈ 1e-2 relative):"]
    for v in chosen:
        losses = merged[v.name]["losses"]
        line = f"  {v.name:18s} step 0 {losses[0]:.4f}  step {len(losses) - 1} {losses[-1]:.4f}"
        twin = merged.get(v.fp32_twin) if v.fp32_twin else None
        if twin:
            n = min(len(losses), len(twin["losses"]))
            diffs = [abs(a - b) / abs(b) for a, b in zip(losses[:n], twin["losses"][:n])]
            line += f"  | vs {v.fp32_twin}: max relative difference {max(diffs):.2e} over {n} steps"
        lines.append(line)
    return "\n".join(lines)


def render_ratios(chosen: list[Variant], merged: dict[str, dict]) -> str:
    refs = [v.name for v in chosen if v.kind == "ref"]
    ours = [v.name for v in chosen if v.kind == "ours"]
    if not refs or not ours:
        return ""
    best = max(refs, key=lambda n: merged[n]["tok_s"])
    lines = []
    for base, what in [("ref", "upstream's step"), (best, "the best reference row")]:
        if base in merged and not (base == best and lines and best == "ref"):
            lines.append(f"ratios against {what} ({base}, {merged[base]['tok_s']:,.0f} tok/s):")
            lines += [f"  {name:18s} {merged[name]['tok_s'] / merged[base]['tok_s']:.2f}×" for name in ours]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
