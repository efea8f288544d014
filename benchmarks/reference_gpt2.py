"""build-nanogpt's training step (``train_gpt2.py``), re-written at the bench size, as the baseline.

By default the step is upstream's exactly: ``torch.set_float32_matmul_precision("high")``, the forward under
``torch.autocast(dtype=torch.bfloat16)`` (always, on a CPU too), the logits into ``F.cross_entropy`` (which
autocast runs in fp32), ``torch.optim.AdamW`` fused only on CUDA, clipping at 1.0, the warmup + cosine
learning rate, and no ``torch.compile`` (upstream's ``use_compile`` is False). Two switches are OURS, not
upstream's: ``--dtype float32`` drops the autocast, and ``--compile`` compiles the model. It shares no code with
``tui_trainer`` so the comparison in ``train_bench.py`` is against an independent loop.

    python benchmarks/reference_gpt2.py --steps 20              # upstream's step
    python benchmarks/reference_gpt2.py --compile --steps 20    # ours: the same with torch.compile

Defaults are the bench config: 6 layers, 6 heads, 384 wide, block 256, batch 8, vocab 50304, GPT-2 BPE tokens of
Tiny Shakespeare (``--data``, default ``../shared/data/tinyshakespeare.txt`` beside the repo).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_TEXT = SHARED / "data" / "tinyshakespeare.txt"
# Offline GPT-2 BPE beside the repo, as the tests use it; a user's own TIKTOKEN_CACHE_DIR wins.
if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken")


@dataclass
class GPTConfig:
    block_size: int = 256
    vocab_size: int = 50304
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.c_proj.SCALE_INIT = 1
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.c_proj.SCALE_INIT = 1

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            std = 0.02
            if hasattr(module, "SCALE_INIT"):
                std *= (2 * self.config.n_layer) ** -0.5
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, device_type):
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        nodecay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": nodecay, "weight_decay": 0.0}]
        use_fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type == "cuda"
        return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.95), eps=1e-8, fused=use_fused)


def load_tokens(text_path: Path) -> torch.Tensor:
    import tiktoken
    text = Path(text_path).read_text(encoding="utf-8")
    return torch.tensor(tiktoken.get_encoding("gpt2").encode(text), dtype=torch.long)


class DataLoaderLite:
    """Sequential windows of B*T+1 tokens over one token tensor, wrapping around (build-nanogpt's loader)."""

    def __init__(self, tokens: torch.Tensor, B: int, T: int):
        self.tokens, self.B, self.T = tokens, B, T
        self.current_position = 0

    def next_batch(self):
        B, T = self.B, self.T
        buf = self.tokens[self.current_position: self.current_position + B * T + 1]
        x, y = buf[:-1].view(B, T), buf[1:].view(B, T)
        self.current_position += B * T
        if self.current_position + (B * T + 1) > len(self.tokens):
            self.current_position = 0
        return x, y


def get_lr(it: int, max_lr: float = 6e-4, warmup_steps: int = 10, max_steps: int = 50) -> float:
    """build-nanogpt's schedule: linear warmup, cosine decay to max_lr / 10 at max_steps."""
    min_lr = max_lr * 0.1
    if it < warmup_steps:
        return max_lr * (it + 1) / warmup_steps
    if it > max_steps:
        return min_lr
    coeff = 0.5 * (1.0 + math.cos(math.pi * (it - warmup_steps) / (max_steps - warmup_steps)))
    return min_lr + coeff * (max_lr - min_lr)


def build(tokens: torch.Tensor, *, dtype: str = "bfloat16", compile: bool = False, seed: int = 1337,
          config: GPTConfig | None = None, batch: int = 8, device: str = "cpu", warmup_steps: int = 10,
          max_steps: int = 50, grad_accum_steps: int = 1):
    """Model, optimizer, loader and a ``step(i) -> (loss tensor, grad norm tensor)`` closure."""
    config = config or GPTConfig()
    torch.set_float32_matmul_precision("high")  # upstream sets it once, before building the model
    torch.manual_seed(seed)
    model = GPT(config).to(device)
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=6e-4, device_type=device.split(":")[0])
    loader = DataLoaderLite(tokens, batch, config.block_size)
    trained = torch.compile(model) if compile else model
    autocast = (lambda: torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)) \
        if dtype == "bfloat16" else nullcontext

    def step(it: int):
        optimizer.zero_grad()
        loss_accum = 0.0
        for _ in range(grad_accum_steps):
            x, y = loader.next_batch()
            x, y = x.to(device), y.to(device)
            with autocast():
                _, loss = trained(x, y)
            loss = loss / grad_accum_steps
            loss_accum += loss.detach()
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it, warmup_steps=warmup_steps, max_steps=max_steps)
        optimizer.step()
        return loss_accum, norm

    return model, step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("GPT_CONSOLE_SHAKESPEARE", str(DEFAULT_TEXT)))
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16",
                   help="bfloat16 = upstream's autocast; float32 (no autocast) is our variant")
    p.add_argument("--compile", action="store_true", help="our variant: torch.compile the model")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--json", help="also write the per-step records (step, loss, dt) to this JSON file")
    p.add_argument("--warmup-steps", type=int, default=10, help="learning-rate warmup")
    p.add_argument("--max-steps", type=int, default=50, help="end of the cosine decay")
    for name, default in vars(GPTConfig()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    p.add_argument("--batch", type=int, default=8, help="micro-batch size B")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-steps per optimizer step")
    args = p.parse_args(argv)
    config = GPTConfig(**{name: getattr(args, name) for name in vars(GPTConfig())})
    tokens = load_tokens(Path(args.data))
    print(f"loaded {len(tokens)} tokens; {torch.get_num_threads()} threads; {config}", flush=True)
    _, step = build(tokens, dtype=args.dtype, compile=args.compile, config=config, batch=args.batch,
                    warmup_steps=args.warmup_steps, max_steps=args.max_steps, grad_accum_steps=args.grad_accum)
    tokens_per_step = args.batch * config.block_size * args.grad_accum
    records = []
    for it in range(args.steps):
        t0 = time.perf_counter()
        loss, norm = step(it)
        loss, norm = loss.item(), norm.item()  # the step's one host sync, as a trainer's log line needs it
        dt = time.perf_counter() - t0
        records.append({"step": it, "loss": loss, "grad_norm": norm, "dt": dt, "tokens": tokens_per_step})
        print(f"step {it:4d} | loss: {loss:.6f} | norm: {norm:.4f} | dt: {dt * 1000:.1f}ms | "
              f"tok/sec: {tokens_per_step / dt:.0f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(records), encoding="utf-8")


if __name__ == "__main__":
    main()
