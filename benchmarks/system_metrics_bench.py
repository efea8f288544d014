"""What `system` events cost the training: ``python -m benchmarks.system_metrics_bench``.

Three costs, each measured, then set against a measured training step of configs/bench.toml:
  1. the training thread: ``agree_with_figures`` carrying world × FIELDS figures vs plain ``agree`` (the
     vector to build and read back grows; no extra call, no extra sync);
  2. the all-reduce carrying them: a real 2-rank gloo group, the step's packed vector with and without the
     figures (the same collective either way);
  3. the sampler thread: CPU time of one sample (/proc reads, os.times, encoding), taken twice per interval —
     counted in full against the step, as if every microsecond of it held the GIL the training thread wanted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tui_trainer.training.lib import system_metrics as sm
from tui_trainer.training.lib.step import agree, agree_with_figures

REPO = Path(__file__).resolve().parents[1]
FLAGS = [False, False, False, False]
TINY_STEP_S = 0.1  # the tests' 2-layer config: the shortest step there is, the worst case for a fixed cost


def step_seconds(steps: int) -> float:
    """Median seconds of a real training step (forward, backward, clip, AdamW) of the bench config's model."""
    from tui_trainer.training.lib.config import load_config
    from tui_trainer.training.lib.model import GPT
    from tui_trainer.training.lib.optim import configure_optimizer
    from tui_trainer.training.lib.precision import configure_precision
    from tui_trainer.training.lib.step import train_step
    cfg = load_config(REPO / "configs" / "bench.toml")
    torch.manual_seed(0)
    model = GPT(cfg.model)
    optimizer = configure_optimizer(model, cfg, "cpu")
    _, autocast = configure_precision(cfg.system.dtype, cfg.system.tf32, torch.device("cpu"))
    B, T = cfg.optim.micro_batch_size, cfg.model.block_size

    class RandomBatches:
        def next_batch(self):
            x = torch.randint(0, 50257, (B, T + 1))
            return x[:, :-1], x[:, 1:]

    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss, norm = train_step(model, model, optimizer, RandomBatches(), accum=1, lr=1e-4, grad_clip=1.0,
                                device=torch.device("cpu"), autocast=autocast, distributed=False)
        agree(loss, norm, FLAGS, world_size=1, distributed=False)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_difference_us(base, other, calls: int) -> tuple[float, float]:
    """(median µs of ``base``, median µs of ``other`` minus ``base``), timed call by call in alternating
    order: on shared cores the load drifts, and a paired difference cancels what both calls suffer alike."""
    base_times, differences = [], []
    for i in range(calls):
        first, second = (base, other) if i % 2 == 0 else (other, base)
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        t2 = time.perf_counter()
        a, b = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
        base_times.append(a)
        differences.append(b - a)
    return statistics.median(base_times) * 1e6, statistics.median(differences) * 1e6


def agree_overhead_us(world: int, calls: int) -> tuple[float, float]:
    """(µs per plain agree, extra µs per agree_with_figures carrying a world-rank vector)."""
    loss, norm = torch.tensor(2.0), torch.tensor(1.0)
    figures = [1.0] * (world * len(sm.FIELDS))
    return paired_difference_us(lambda: agree(loss, norm, FLAGS, world_size=1, distributed=False),
                                lambda: agree_with_figures(loss, norm, FLAGS, figures, world_size=1,
                                                           distributed=False), calls)


def _allreduce_worker(rank: int, init_file: str, sizes: list[int], calls: int, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    small, large = (torch.zeros(size, dtype=torch.float64) for size in sizes)
    for _ in range(100):
        dist.all_reduce(small)
    base, extra = paired_difference_us(lambda: dist.all_reduce(small), lambda: dist.all_reduce(large), calls)
    if rank == 0:
        out.update(base=base, extra=extra)
    dist.destroy_process_group()


def allreduce_us(sizes: list[int], calls: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_allreduce_worker, args=(os.path.join(tmp, "init"), sizes, calls, out), nprocs=2)
        return out["base"], out["extra"]


def sample_cpu_us(samples: int) -> float:
    sampler = sm.SystemSampler(10.0, rank=0, world_size=1)
    sampler.sample_now()
    t0 = time.thread_time()
    for _ in range(samples):
        sampler.sample_now()
    return (time.thread_time() - t0) / samples * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed training steps of the bench model")
    p.add_argument("--interval", type=float, default=10.0, help="system.metrics_seconds to cost")
    args = p.parse_args(argv)
    # One thread: with the cores shared, OpenMP's spinning threads would measure the neighbours, not the step.
    torch.set_num_threads(1)

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    step = step_seconds(args.steps)
    print(f"bench-config training step (median of {args.steps}): {step * 1000:.1f} ms")
    width = len(sm.FIELDS)
    flags_len = 2 + len(FLAGS)
    reduce_base, reduce_extra = allreduce_us([flags_len, flags_len + 2 * width], calls=4000)
    print(f"2-rank gloo all-reduce of the step vector: median {reduce_base:.1f} µs; carrying 2 × {width} "
          f"figures adds {reduce_extra:+.1f} µs (median of paired calls)")
    sample = sample_cpu_us(500)
    print(f"one sample (CPU time, sampler thread): {sample:.1f} µs, twice per {args.interval:g} s "
          f"= {sample * 2 / args.interval / 1e4:.5f} % of one core")
    for world in (2, 8, 64):
        plain, extra = agree_overhead_us(world, 20000)
        per_step = extra + max(0.0, reduce_extra)
        share = per_step / (step * 1e6) + sample * 1e-6 * 2 / args.interval
        tiny = per_step / (TINY_STEP_S * 1e6) + sample * 1e-6 * 2 / args.interval
        print(f"world {world:3d}: agree {plain:.1f} µs, {extra:+.2f} µs with figures on the training thread; "
              f"{share * 100:.4f} % of this step, {tiny * 100:.4f} % of a {TINY_STEP_S * 1000:.0f} ms step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
