"""Where the CPU speed-up comes from: the trainer's step with each optimisation added in turn.

    python -m benchmarks.ablation_bench                  # bench config, 2,048 tokens a step, 15 timed steps
    python -m benchmarks.ablation_bench --steps 30 --config configs/shakespeare.toml

Each row runs in a fresh process (the allocator setting is process-wide and cannot be undone) and times the
library's own step (lib/step.py ``train_step``, lib/model.py ``GPT``, lib/optim.py ``configure_optimizer``) on
random tokens in bf16 autocast, switching the optimisations on cumulatively:

  baseline       plain head (F.linear + fp32 F.cross_entropy), flash SDPA, foreach AdamW, glibc malloc as is
  + malloc       keep_freed_memory(): big freed blocks are reused instead of page-faulted again (lib/cpu_memory.py)
  + fused AdamW  torch's fused CPU kernel (optim.fused = "auto" on CPU)
  + fused head   the chunked linear + cross-entropy (lib/fused_head.py)
  + attention    the explicit softmax(QKᵀ)V for short contexts on CPU (lib/attention.py) = the trainer's default
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ["baseline", "+ malloc", "+ fused AdamW", "+ fused head", "+ attention"]


def run_stage(stage: int, config: str, overrides: list[str], steps: int, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    from tui_trainer.training.lib import model as model_module
    from tui_trainer.training.lib.config import flops_per_token, grad_accum_steps, load_config
    from tui_trainer.training.lib.cpu_memory import keep_freed_memory
    from tui_trainer.training.lib.optim import configure_optimizer
    from tui_trainer.training.lib.precision import make_autocast
    from tui_trainer.training.lib.step import train_step

    if stage >= 1:
        keep_freed_memory()
    overrides = [*overrides, f"optim.fused={'auto' if stage >= 2 else 'off'}", "launch.nproc_per_node=1"]
    if stage < 3:
        model_module.lm_loss = lambda h, w, y: F.cross_entropy(F.linear(h, w).float().flatten(0, 1), y.flatten())
    if stage < 4:
        model_module.causal_attention = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    cfg = load_config(config, overrides)
    device = torch.device("cpu")
    torch.manual_seed(cfg.system.seed)
    model = model_module.GPT(cfg.model)
    optimizer = configure_optimizer(model, cfg, "cpu")
    autocast = make_autocast(device, torch.bfloat16)
    B, T = cfg.optim.micro_batch_size, cfg.model.block_size
    g = torch.Generator().manual_seed(0)

    class RandomTokens:  # the speed does not depend on which tokens these are
        def next_batch(self):
            buf = torch.randint(0, 50257, (B * T + 1,), generator=g)
            return buf[:-1].view(B, T), buf[1:].view(B, T)

    loader, accum, times, losses = RandomTokens(), grad_accum_steps(cfg, 1), [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss, norm = train_step(model, model, optimizer, loader, accum=accum, lr=1e-4, grad_clip=1.0,
                                device=device, autocast=autocast, distributed=False)
        losses.append(loss.item())  # the trainer's one host sync a step
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    tokens = cfg.optim.total_batch_size
    med = statistics.median(times)
    return {"stage": STAGES[stage], "tok_s": tokens / med, "dt_med": med, "dt_min": min(times),
            "tflops": flops_per_token(cfg) * tokens / med / 1e12, "last_loss": losses[-1]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "bench.toml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--stage", type=int, help=argparse.SUPPRESS)  # child mode: run one stage, print JSON
    args = p.parse_args(argv)
    if args.stage is not None:
        print(json.dumps(run_stage(args.stage, args.config, args.set, args.steps, args.warmup)))
        return
    print(f"{args.config} {' '.join(args.set)}: {args.warmup} warm-up + {args.steps} timed steps per row, "
          "random tokens, bf16 autocast, one process")
    print("| stage | tok/s | median step ms | best step ms | TFLOP/s | loss after the last step |")
    print("|---|---|---|---|---|---|")
    for stage in range(len(STAGES)):
        argv_child = [sys.executable, "-m", "benchmarks.ablation_bench", "--config", args.config,
                      "--steps", str(args.steps), "--warmup", str(args.warmup), "--stage", str(stage)]
        for s in args.set:
            argv_child += ["--set", s]
        out = subprocess.run(argv_child, capture_output=True, text=True, cwd=REPO, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['stage']} | {r['tok_s']:,.0f} | {r['dt_med'] * 1e3:.0f} | {r['dt_min'] * 1e3:.0f} | "
              f"{r['tflops']:.3f} | {r['last_loss']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
