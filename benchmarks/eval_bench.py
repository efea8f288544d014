"""Evaluation speed on the bench model: HellaSwag examples/s, validation tokens/s, sampling tokens/s.

    python -m benchmarks.eval_bench                       # bench config, 200 HellaSwag examples, default dtype
    python -m benchmarks.eval_bench --examples 1000 --dtype float32

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
    args = p.parse_args(argv)

    import os
    if "TIKTOKEN_CACHE_DIR" not in os.environ and (REPO.parent / "shared" / "tiktoken").is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(REPO.parent / "shared" / "tiktoken")
    import torch
    from tui_trainer.training import lib as L
    from tui_trainer.training.lib.cpu_memory import keep_freed_memory
    from tui_trainer.training.lib.hellaswag import read_hellaswag

    keep_freed_memory()
    overrides = [*args.set, f"system.dtype={args.dtype}", f"eval.hellaswag_path={json.dumps(args.hellaswag)}"]
    cfg = L.load_config(args.config, overrides)
    if cfg.data.source == "shakespeare" and not cfg.data.path:
        cfg = L.load_config(args.config, overrides + [f"data.path={json.dumps(args.data)}"])
    device = torch.device("cpu")
    dtype, autocast = L.configure_precision(cfg.system.dtype, cfg.system.tf32, device)
    torch.manual_seed(cfg.system.seed)
    model = L.GPT(cfg.model)
    print(f"{L.parameter_count(cfg):,} parameters, {dtype}, {torch.get_num_threads()} threads")

    examples = read_hellaswag(Path(args.hellaswag))[:args.examples]
    L.run_hellaswag_eval(model, examples[:8], device, autocast, 0, 1)  # warm-up
    t0 = time.perf_counter()
    result = L.run_hellaswag_eval(model, examples, device, autocast, 0, 1)
    dt = time.perf_counter() - t0
    print(f"HellaSwag: {result['total']} examples in {dt:.2f} s = {result['total'] / dt:.1f} examples/s "
          f"(acc_norm {result['acc_norm']:.3f}, chance level for an untrained model)")

    L.ensure_shards(cfg)
    _, val_loader = L.build_dataloaders(cfg, 0, 1)
    steps = cfg.eval.val_steps
    L.evaluate_loss(model, val_loader, 1, device, autocast)
    t0 = time.perf_counter()
    loss = L.evaluate_loss(model, val_loader, steps, device, autocast)
    dt = time.perf_counter() - t0
    tokens = steps * cfg.optim.micro_batch_size * cfg.model.block_size
    print(f"val loss:  {steps} batches, {tokens:,} tokens in {dt:.2f} s = {tokens / dt:,.0f} tokens/s (loss {loss:.3f})")

    enc = L.get_tokenizer()
    s = cfg.sample
    t0 = time.perf_counter()
    L.generate_samples(model, enc, s.prompt, s.count, s.max_tokens, s.top_k, s.temperature, s.seed, device, autocast)
    dt = time.perf_counter() - t0
    print(f"samples:   {s.count} × {s.max_tokens} tokens in {dt:.2f} s = {s.count * s.max_tokens / dt:,.0f} tokens/s")


if __name__ == "__main__":
    main()
