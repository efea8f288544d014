"""Data and evaluation figures: the embedded corpus, its preparation, HellaSwag and sampling speed.

    python -m benchmarks.data_bench                          # everything, model 4 layers × 128 wide
    python -m benchmarks.data_bench --only hellaswag --examples 400 --n-layer 12 --n-embd 768

Times are wall clock and this process's CPU time (threads pinned to --threads): on a machine shared with other
jobs, CPU time is the steadier figure. Needs TIKTOKEN_CACHE_DIR offline; HellaSwag reads
$GPT_CONSOLE_SHARED_DATA/hellaswag_val.jsonl.gz (default ../shared/data).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

from tui_trainer.training.lib.config import load_config

SHARED_DATA = Path(os.environ.get("GPT_CONSOLE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@contextlib.contextmanager
def timed(label: str):
    wall, cpu = time.perf_counter(), time.process_time()
    result = {}
    yield result
    result.update(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu)
    print(f"{label}: {result['wall']:.2f} s wall, {result['cpu']:.2f} s CPU")


def bench_corpus() -> None:
    from tui_trainer.training.lib import shards, sources
    from tui_trainer.training.lib.tokenizer import get_tokenizer
    get_tokenizer()
    with timed("read the embedded corpus (pydoc topics + stdlib docstrings + built-in modules)"):
        docs = list(sources.embedded_documents())
    chars = sum(map(len, docs))
    with timed("tokenise it (one process)"):
        tokens = sum(len(t) for batch in shards.tokenize_documents(docs) for t in batch)
    print(f"embedded corpus: {len(docs):,} documents, {chars:,} characters, {tokens:,} tokens (EOT included)")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, ["data.source=embedded", f"data.cache_dir={tmp}"])
        with timed("ensure_shards from scratch (read + tokenise + write)"):
            shard_dir = shards.ensure_shards(cfg)
        manifest = shards.read_manifest(shard_dir)
        print(f"  shards: {manifest['tokens']['train']:,} train + {manifest['tokens']['val']:,} val tokens, "
              f"{manifest['documents']['val']} of {sum(manifest['documents'].values())} documents held out")
        with timed("ensure_shards again (already prepared)"):
            shards.ensure_shards(cfg)


def bench_evaluation(args) -> None:
    import torch
    from tui_trainer.training.lib.config import ModelConfig
    from tui_trainer.training.lib.evaluation import generate_samples, run_hellaswag_eval
    from tui_trainer.training.lib.hellaswag import read_hellaswag, select_examples
    from tui_trainer.training.lib.model import GPT
    from tui_trainer.training.lib.tokenizer import get_tokenizer

    class LogitsOnly(torch.nn.Module):
        """The model behind only its contract forward (full logits), to compare with the hidden_states path."""
        def __init__(self, inner):
            super().__init__()
            self.inner, self.transformer = inner, inner.transformer

        def forward(self, idx, targets=None):
            return self.inner(idx, targets)

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model = GPT(ModelConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                            block_size=args.block_size))
    examples = select_examples(read_hellaswag(SHARED_DATA / "hellaswag_val.jsonl.gz"), args.examples)
    print(f"model: {args.n_layer} layers × {args.n_embd} wide, block {args.block_size}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; {torch.get_num_threads()} threads")
    for dtype in (torch.float32, torch.bfloat16):
        autocast = contextlib.nullcontext if dtype == torch.float32 else \
            (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        run_hellaswag_eval(model, examples[:8], cpu, autocast, 0, 1)  # warm-up (kernel selection)
        if "hellaswag" in args.only:
            for name, m in (("hidden_states path", model), ("full logits", LogitsOnly(model))):
                with timed(f"HellaSwag {len(examples)} examples, {str(dtype)[6:]}, {name}") as t:
                    run_hellaswag_eval(m, examples, cpu, autocast, 0, 1)
                print(f"  {len(examples) / t['wall']:.1f} examples/s wall, {len(examples) / t['cpu']:.1f} per CPU-s")
        if "sample" in args.only:
            enc = get_tokenizer()
            generate_samples(model, enc, "Hello", 4, 8, 50, 1.0, 0, cpu, autocast)  # warm-up
            with timed(f"sample 4 × 32 tokens, {str(dtype)[6:]}") as t:
                generate_samples(model, enc, "Hello, I'm a language model,", 4, 32, 50, 1.0, 42, cpu, autocast)
            print(f"  {4 * 32 / t['wall']:.0f} tokens/s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="corpus,hellaswag,sample")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if "corpus" in args.only:
        bench_corpus()
    if "hellaswag" in args.only or "sample" in args.only:
        bench_evaluation(args)


if __name__ == "__main__":
    main()
