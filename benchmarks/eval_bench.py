"""Evaluation speed on the bench model: HellaSwag examples/s, validation tokens/s, sampling tokens/s.

    python -m benchmarks.eval_bench                       # bench config, 200 HellaSwag examples, default dtype
    python -m benchmarks.eval_bench --examples 1000 --dtype float32
    python -m benchmarks.eval_bench --parts val --rounds 3   # the validation loss only, best of 3
    python -m benchmarks.eval_bench --grad-buffer-ab --rounds 5 --threads 1 --cpu-time

``--grad-buffer-ab`` times the validation loss with the fused head as it is (no gradient work under no_grad)
against the same head forced to fill its (N, V) logit-gradient buffer anyway (what it did before it was told
the grad mode), interleaved round by round so that other load on the machine hits both alike. ``--cpu-time``
(with ``--threads 1``) times with the thread's CPU time, which other jobs on a shared machine barely move.

Runs the library's own evaluation code (lib/evaluation.py) on a freshly initialised model of the config (the
accuracy is chance level; the speed is what is measured — it does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "bench.toml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--examples", type=int, default=200)
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    p.add_argument("--hellaswag", default=str(SHARED / "hellaswag_val.jsonl.gz"))
    p.add_argument("--data", default=str(SHARED / "tinyshakespeare.txt"))
    p.add_argument("--parts", default="hellaswag,val,samples", help="comma-separated subset to measure")
    p.add_argument("--rounds", type=int, default=1, help="time each part this often; the fastest is shown")
    p.add_argument("--grad-buffer-ab", action="store_true", help="val loss: no-grad head vs gradient buffer")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--cpu-time", action="store_true", help="time with thread CPU time (use with --threads 1)")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))

    import os
    if "TIKTOKEN_CACHE_DIR" not in os.environ and (REPO.parent / "shared" / "tiktoken").is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(REPO.parent / "shared" / "tiktoken")
    import torch
    from tui_trainer.training import lib as L
    from tui_trainer.training.lib.cpu_memory import keep_freed_memory
    from tui_trainer.training.lib.hellaswag import read_hellaswag

    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    overrides = [*args.set, f"system.dtype={args.dtype}", f"eval.hellaswag_path={json.dumps(args.hellaswag)}"]
    cfg = L.load_config(args.config, overrides)
    if cfg.data.source == "shakespeare" and not cfg.data.path:
        cfg = L.load_config(args.config, overrides + [f"data.path={json.dumps(args.data)}"])
    device = torch.device("cpu")
    dtype, autocast = L.configure_precision(cfg.system.dtype, cfg.system.tf32, device)
    torch.manual_seed(cfg.system.seed)
    model = L.GPT(cfg.model)
    print(f"{L.parameter_count(cfg):,} parameters, {dtype}, {torch.get_num_threads()} threads")

    def fastest(run):
        times = []
        for _ in range(args.rounds):
            t0 = clock()
            result = run()
            times.append(clock() - t0)
        return result, min(times)

    if args.grad_buffer_ab:
        grad_buffer_ab(L, cfg, model, device, autocast, args.rounds, clock)
        return

    if "hellaswag" in parts:
        examples = read_hellaswag(Path(args.hellaswag))[:args.examples]
        L.run_hellaswag_eval(model, examples[:8], device, autocast, 0, 1)  # warm-up
        result, dt = fastest(lambda: L.run_hellaswag_eval(model, examples, device, autocast, 0, 1))
        print(f"HellaSwag: {result['total']} examples in {dt:.2f} s = {result['total'] / dt:.1f} examples/s "
              f"(acc_norm {result['acc_norm']:.3f}, chance level for an untrained model)")

    if "val" in parts:
        L.ensure_shards(cfg)
        _, val_loader = L.build_dataloaders(cfg, 0, 1)
        steps = cfg.eval.val_steps
        L.evaluate_loss(model, val_loader, 1, device, autocast)
        loss, dt = fastest(lambda: L.evaluate_loss(model, val_loader, steps, device, autocast))
        tokens = steps * cfg.optim.micro_batch_size * cfg.model.block_size
        print(f"val loss:  {steps} batches, {tokens:,} tokens in {dt:.2f} s = {tokens / dt:,.0f} tokens/s "
              f"(loss {loss:.3f})")

    if "samples" in parts:
        enc = L.get_tokenizer()
        s = cfg.sample
        _, dt = fastest(lambda: L.generate_samples(model, enc, s.prompt, s.count, s.max_tokens, s.top_k,
                                                   s.temperature, s.seed, device, autocast))
        print(f"samples:   {s.count} × {s.max_tokens} tokens in {dt:.2f} s = "
              f"{s.count * s.max_tokens / dt:,.0f} tokens/s")


def grad_buffer_ab(L, cfg, model, device, autocast, rounds: int, clock) -> None:
    import torch
    from tui_trainer.training.lib import fused_head, model as model_module

    def with_grad_buffer(hidden, weight, targets):  # the head as before the fix: grad work under no_grad too
        dtype = fused_head.autocast_dtype(hidden.device.type) or hidden.dtype
        with torch.autocast(hidden.device.type, enabled=False):
            return fused_head._LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), weight,
                                                        targets.reshape(-1), dtype, fused_head.CPU_CHUNK_ROWS,
                                                        True)
    L.ensure_shards(cfg)
    _, val_loader = L.build_dataloaders(cfg, 0, 1)
    steps = cfg.eval.val_steps
    tokens = steps * cfg.optim.micro_batch_size * cfg.model.block_size
    heads = {"no-grad head (now)": fused_head.fused_linear_cross_entropy,
             "gradient buffer (before)": with_grad_buffer}
    times: dict[str, list[float]] = {name: [] for name in heads}
    losses = {}
    original = model_module.fused_linear_cross_entropy
    try:
        for rnd in range(rounds + 1):  # round 0 warms up both
            for name, head in heads.items():
                model_module.fused_linear_cross_entropy = head
                t0 = clock()
                losses[name] = L.evaluate_loss(model, val_loader, steps, device, autocast)
                if rnd:
                    times[name].append(clock() - t0)
    finally:
        model_module.fused_linear_cross_entropy = original
    print(f"val loss, {steps} batches = {tokens:,} tokens, best of {rounds} interleaved rounds "
          f"({'thread CPU time' if clock is time.thread_time else 'wall time'}):")
    for name in heads:
        print(f"  {name:26s} {min(times[name]):7.3f} s = {tokens / min(times[name]):8,.0f} tokens/s  "
              f"(rounds: {' '.join(f'{t:.2f}' for t in times[name])}; loss {losses[name]:.4f})")
    now, before = (min(times[name]) for name in heads)
    print(f"  speed-up: {before / now:.2f}x")


if __name__ == "__main__":
    main()
