"""The GPT head + cross-entropy alone: the plain autocast path against lib/fused_head.py, forward + backward.

    python -m benchmarks.head_bench                     # bench size: 2048 tokens, 384 wide, vocab 50304
    python -m benchmarks.head_bench --threads 1 --cpu-time --chunks 64,128,256,512

``--cpu-time`` times with the calling thread's CPU time (use with ``--threads 1``): on a machine shared with
other jobs it still compares variants fairly, where wall time would mostly measure the other jobs.
"""

from __future__ import annotations

import argparse
import time

import torch

from tui_trainer.training.lib.cpu_memory import keep_freed_memory
from tui_trainer.training.lib.fused_head import fused_linear_cross_entropy, reference_linear_cross_entropy


def time_fn(fn, reps: int, cpu_time: bool) -> list[float]:
    clock = time.thread_time if cpu_time else time.perf_counter
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--chunks", default="128,256,512")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cpu-time", action="store_true")
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    p.add_argument("--default-malloc", action="store_true",
                   help="leave glibc malloc as is (the trainer calls keep_freed_memory(); so does this by default)")
    args = p.parse_args(argv)
    if not args.default_malloc:
        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.tokens, args.width, generator=g).requires_grad_()
    weight = (torch.randn(args.vocab, args.width, generator=g) * 0.02).requires_grad_()
    targets = torch.randint(0, min(args.vocab, 50257), (args.tokens,), generator=g)
    autocast = args.dtype == "bfloat16"

    def step(loss_fn):
        def run():
            hidden.grad = weight.grad = None
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(hidden, weight, targets)
            loss.backward()
            return loss
        return run

    flops = 6 * args.tokens * args.width * args.vocab
    print(f"{args.tokens} tokens × {args.width} → {args.vocab}, {args.dtype}, {torch.get_num_threads()} threads, "
          f"{'thread CPU' if args.cpu_time else 'wall'} time, {flops / 1e9:.0f} GFLOP of matmul per fwd+bwd")
    variants = [("plain F.linear + F.cross_entropy", reference_linear_cross_entropy)]
    variants += [(f"fused, chunk_rows={c}", lambda h, w, y, c=int(c): fused_linear_cross_entropy(h, w, y,
                                                                                             chunk_rows=c))
                 for c in args.chunks.split(",")]
    for name, fn in variants:
        ts = sorted(time_fn(step(fn), args.reps, args.cpu_time))
        print(f"  {name:34s} min {ts[0] * 1e3:7.1f} ms  median {ts[len(ts) // 2] * 1e3:7.1f} ms  "
              f"({flops / ts[0] / 1e12:.2f} TFLOP/s at min)", flush=True)


if __name__ == "__main__":
    main()
