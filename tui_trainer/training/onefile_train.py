"""Train a GPT-2 in one file: the whole of gpt-console's trainer, readable top to bottom.

    python tui_trainer/training/onefile_train.py --config configs/shakespeare.toml
    torchrun --standalone --nproc_per_node=2 onefile_train.py --config my.toml --set optim.max_lr=1e-3

This is the twin of the modular trainer (``train.py`` over ``lib/``): the same config file and ``--set``
overrides, the same model and initialisation, data order, learning rate, evaluation, samples, checkpoints
(either trainer resumes the other's), control files and events. tests/training/test_lockstep*.py hold the two to
identical losses. It imports only the standard library, torch, numpy and tiktoken, so you can copy it out of the
repository and run it with a config. Sections, in order:

  1. config       TrainingConfig: TOML sections -> dataclasses, validated, with --set overrides
  2. model        GPT-2 (Hugging Face parameter names), the chunked fused head + cross-entropy
  3. data prep    corpus -> uint16 token shards (embedded / shakespeare / files; fineweb-edu: `gpt-console prepare`)
  4. loader       shards -> (x, y) batches in one global window order shared by all ranks
  5. distributed  setup_distributed(), precision, optimizer, get_lr()
  6. evaluation   evaluate_loss(), HellaSwag, sampling
  7. run dir      checkpoints, resume, events, control files, signals
  8. train()      the loop;  main() the command line
"""

from __future__ import annotations

import argparse
import ast
import bisect
import contextlib
import dataclasses
import difflib
import functools
import gc
import glob
import gzip
import hashlib
import inspect
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import sysconfig
import time
import traceback
import urllib.request
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

SCHEMA_VERSION = 1          # of the event log (docs/events.md)
CHECKPOINT_FORMAT = 1       # of checkpoint.pt
EOT = 50256                 # <|endoftext|>, precedes every document in the shards
GPT2_VOCAB = 50257


class UserError(RuntimeError):
    """A problem the user can fix (bad data path, offline download, resume conflict): one paragraph, no traceback."""


# ================================================================================================ 1. config
# Every key, its default, and the bounds/choices validation checks. Precedence: --set > TOML file > defaults
# (GPT-2 124M on FineWeb-Edu). The console's editor shows each key's help; here a comment says it briefly.

def _f(default: Any, *, choices: tuple[str, ...] | None = None, min: float | None = None,
       max: float | None = None) -> Any:
    meta = {"choices": choices, "min": min, "max": max}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    n_layer: int = _f(12, min=1)                  # transformer blocks
    n_head: int = _f(12, min=1)                   # attention heads; must divide n_embd
    n_embd: int = _f(768, min=1)                  # residual stream width
    block_size: int = _f(1024, min=2)             # context length T
    vocab_size: int = _f(50304, min=GPT2_VOCAB)   # 50257 BPE tokens padded to a multiple of 128


@dataclass
class DataConfig:
    source: str = _f("fineweb-edu", choices=("embedded", "shakespeare", "fineweb-edu", "files"))
    path: str = _f("")                            # 'files': file/dir/glob; 'shakespeare': a local copy
    shard_dir: str = _f("")                       # empty = <cache_dir>/shards/<source>-<recipe hash>
    cache_dir: str = _f("~/.cache/gpt-console")   # downloads and shards
    shard_tokens: int = _f(100_000_000, min=1024)
    val_fraction: float = _f(0.05, min=0.0, max=0.5)  # share of a small corpus's documents held out
    max_tokens: int = _f(0, min=0)                # stop preparing after this many tokens (0 = all)
    shuffle: bool = _f(True)                      # seeded per-epoch window order


@dataclass
class OptimConfig:
    total_batch_size: int = _f(524_288, min=1)    # tokens per optimizer step, all ranks and micro-steps
    micro_batch_size: int = _f(64, min=1)         # sequences per rank per forward (B)
    max_lr: float = _f(6e-4, min=0.0)
    min_lr_ratio: float = _f(0.1, min=0.0, max=1.0)
    weight_decay: float = _f(0.1, min=0.0)        # on 2-D weights only
    beta1: float = _f(0.9, min=0.0, max=0.999999)
    beta2: float = _f(0.95, min=0.0, max=0.999999)
    eps: float = _f(1e-8, min=0.0)
    grad_clip: float = _f(1.0, min=0.0)           # 0 = no clipping
    fused: str = _f("auto", choices=("auto", "on", "off"))  # fused AdamW ('auto' = on CUDA and CPU)


@dataclass
class ScheduleConfig:
    kind: str = _f("cosine", choices=("cosine", "linear", "constant"))
    warmup_steps: int = _f(715, min=0)
    max_steps: int = _f(19073, min=1)


@dataclass
class EvalConfig:
    every: int = _f(250, min=0)                   # val loss every N steps (0 = only at the end)
    val_steps: int = _f(20, min=1)                # micro-batches per rank per val loss
    hellaswag_every: int = _f(250, min=0)         # 0 = never
    hellaswag_examples: int = _f(0, min=0)        # 0 = all 10,042
    hellaswag_path: str = _f("")                  # empty = download into cache_dir


@dataclass
class SampleConfig:
    every: int = _f(250, min=0)
    prompt: str = _f("Hello, I'm a language model,")
    count: int = _f(4, min=1)
    max_tokens: int = _f(32, min=1)
    top_k: int = _f(50, min=1)
    temperature: float = _f(1.0, min=1e-6)
    seed: int = _f(42, min=0)


@dataclass
class CheckpointConfig:
    every: int = _f(5000, min=0)                  # 0 = only at the end or when stopped
    keep_last: int = _f(3, min=1)
    resume: str = _f("never", choices=("never", "auto"))


@dataclass
class SystemConfig:
    device: str = _f("auto")                      # auto, cpu, cuda, cuda:N, mps, xpu
    dtype: str = _f("auto", choices=("auto", "float32", "bfloat16"))  # autocast dtype
    compile: bool = _f(False)
    tf32: bool = _f(True)
    seed: int = _f(1337, min=0)
    threads: int = _f(0, min=0)                   # torch.set_num_threads (0 = OMP_NUM_THREADS)
    log_every: int = _f(1, min=1)
    heartbeat_seconds: float = _f(10.0, min=0.5)


@dataclass
class LaunchConfig:  # read by the console's launcher; the trainer only checks the world size
    trainer: str = _f("train", choices=("train", "onefile"))
    nproc_per_node: int = _f(1, min=1)
    nnodes: int = _f(1, min=1)
    rdzv_endpoint: str = _f("")
    rdzv_id: str = _f("")
    omp_num_threads: int = _f(0, min=0)
    env: dict = _f({})


@dataclass
class TrainingConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)

    @property
    def world_size(self) -> int:
        return self.launch.nproc_per_node * self.launch.nnodes


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(TrainingConfig)}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}


class ConfigError(ValueError):
    """Every problem found, one per line as "key: reason — fix", so the user fixes them all in one go."""

    def __init__(self, problems: list[tuple[str, str, str]], source: str = ""):
        self.problems = problems
        head = f"invalid config {source}".rstrip() + ":"
        lines = [f"  {key or 'config'}: {reason}" + (f" — {fix}" if fix else "") for key, reason, fix in problems]
        super().__init__("\n".join([head] + lines))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:_}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"cannot write {v!r} as TOML")


def _check_value(key: str, f: dataclasses.Field, value: Any) -> tuple[str, str, str] | None:
    """The problem with one value for field ``f`` (None when fine)."""
    t, m = _TYPES[f.type] if isinstance(f.type, str) else f.type, f.metadata
    ok = (isinstance(value, bool) if t is bool else
          isinstance(value, int) and not isinstance(value, bool) if t is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if t is float else isinstance(value, t))
    if not ok:
        kind = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a table"}[t]
        default = f.default_factory() if t is dict else f.default
        return key, f"expected {kind}, got {value!r}", f"e.g. {f.name} = {_toml_value(default)}"
    if t is float and not math.isfinite(value):
        return key, f"{float(value)} is not a finite number", ""
    if t is dict:
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        if bad:
            return key, f"values must be strings (see {', '.join(bad)})", 'quote them, e.g. NCCL_DEBUG = "WARN"'
    if m["choices"] and value not in m["choices"]:
        close = difflib.get_close_matches(str(value), m["choices"], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        choices = ", ".join(m["choices"])
        return key, f"'{value}' is not one of {choices}", f"{hint}choose one of {choices}"
    if m["min"] is not None and value < m["min"]:
        return key, f"{float(value) if t is float else value} is below the minimum {m['min']:g}", ""
    if m["max"] is not None and value > m["max"]:
        return key, f"{float(value) if t is float else value} is above the maximum {m['max']:g}", ""
    return None


def _unknown(key: str, candidates: list[str], what: str) -> tuple[str, str, str]:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], candidates, n=1)
    fix = f"did you mean '{close[0]}'?" if close else f"known {what}: {', '.join(sorted(candidates))}"
    return key, f"unknown {what[:-1] if what.endswith('s') else what}", fix


def config_from_dict(data: dict[str, Any], source: str = "") -> TrainingConfig:
    """Build and validate a config from parsed TOML; raise ConfigError listing every problem."""
    problems, sections = [], {}
    for name, table in data.items():
        if name not in SECTIONS:
            problems.append(_unknown(name, list(SECTIONS), "sections"))
            continue
        if not isinstance(table, dict):
            problems.append((name, "expected a [section] table", f"write it as [{name}]"))
            continue
        fields = {f.name: f for f in dataclasses.fields(SECTIONS[name])}
        values = {}
        for key, value in table.items():
            if key not in fields:
                problems.append(_unknown(f"{name}.{key}", list(fields), "keys"))
            elif problem := _check_value(f"{name}.{key}", fields[key], value):
                problems.append(problem)
            else:
                values[key] = float(value) if fields[key].type in ("float", float) else value
        sections[name] = SECTIONS[name](**values)
    cfg = TrainingConfig(**sections)
    problems += validate_config(cfg)
    if problems:
        raise ConfigError(problems, source)
    return cfg


def validate_config(cfg: TrainingConfig) -> list[tuple[str, str, str]]:
    """Rules that tie keys together."""
    p = []
    m, o, s, lc = cfg.model, cfg.optim, cfg.schedule, cfg.launch
    if m.n_embd % m.n_head:
        p.append(("model.n_embd", f"{m.n_embd} is not divisible by model.n_head = {m.n_head}",
                  f"use a multiple of {m.n_head}, e.g. {m.n_head * max(1, m.n_embd // m.n_head)}"))
    per_step = o.micro_batch_size * m.block_size * cfg.world_size
    if per_step and o.total_batch_size % per_step:
        lo = max(per_step, o.total_batch_size // per_step * per_step)
        p.append(("optim.total_batch_size",
                  f"{o.total_batch_size} tokens is not a multiple of micro_batch_size × block_size × world size = "
                  f"{o.micro_batch_size} × {m.block_size} × {cfg.world_size} = {per_step}",
                  f"use {lo} or {lo + per_step}, or change micro_batch_size"))
    if s.warmup_steps > s.max_steps:
        p.append(("schedule.warmup_steps", f"{s.warmup_steps} is more than schedule.max_steps = {s.max_steps}",
                  "shorten the warmup or train longer"))
    if cfg.sample.max_tokens >= m.block_size:
        p.append(("sample.max_tokens", f"{cfg.sample.max_tokens} new tokens do not fit the {m.block_size}-token "
                  "context", f"use fewer than {m.block_size}"))
    if cfg.sample.top_k > m.vocab_size:
        p.append(("sample.top_k", f"{cfg.sample.top_k} exceeds model.vocab_size", "lower it"))
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?", cfg.system.device):
        p.append(("system.device", f"'{cfg.system.device}' is not a device", "use auto, cpu, cuda, cuda:N, mps or xpu"))
    if lc.nnodes > 1 and not (lc.rdzv_endpoint and lc.rdzv_id):
        p.append(("launch.rdzv_endpoint", "a multi-node run needs a rendezvous endpoint and id",
                  'set rdzv_endpoint = "host:29500" and rdzv_id = "some-job"'))
    if cfg.data.source == "files" and not cfg.data.path:
        p.append(("data.path", "source 'files' needs the files to read",
                  'set path = "my_corpus/*.txt" (a file, directory or glob)'))
    bad_env = [k for k in lc.env if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
    if bad_env:
        p.append(("launch.env", f"not an environment variable name: {', '.join(bad_env)}", ""))
    return p


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """--set section.key=value (TOML values; bare words are strings), later ones winning."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for text in overrides:
        key, sep, raw = text.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or "." not in key:
            raise ConfigError([(key or text, "an override looks like section.key=value",
                                "e.g. --set optim.max_lr=3e-4")], "(--set)")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # --set data.source=shakespeare
        section, _, name = key.partition(".")
        if "." in name:  # launch.env.FOO=bar
            name, _, sub = name.partition(".")
            table = merged.setdefault(section, {}).setdefault(name, {})
            if isinstance(table, dict):
                table[sub] = value
            continue
        merged.setdefault(section, {})[name] = value
    return merged


def parse_toml_text(text: str, source: str = "") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([("", f"TOML syntax error: {e}", "fix the line it names")], source) from None


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("", f"no such file: {Path(path)}", "check the path (presets live in configs/)")],
                          str(path)) from None
    return parse_toml_text(text, str(path))


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> TrainingConfig:
    data = read_toml(path) if path else {}
    return config_from_dict(apply_overrides(data, list(overrides)), str(path or ""))


def config_to_toml(cfg: TrainingConfig) -> str:
    """The resolved config, saved beside the run and in every checkpoint."""
    lines = []
    for section, values in dataclasses.asdict(cfg).items():
        lines += [f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()] + [""]
    return "\n".join(lines)


def parameter_count(cfg: TrainingConfig, include_position: bool = True) -> int:
    c, L, v, t = cfg.model.n_embd, cfg.model.n_layer, cfg.model.vocab_size, cfg.model.block_size
    per_block = (2 * c) + (c * 3 * c + 3 * c) + (c * c + c) + (2 * c) + (c * 4 * c + 4 * c) + (4 * c * c + c)
    return v * c + (t * c if include_position else 0) + L * per_block + 2 * c


def flops_per_token(cfg: TrainingConfig) -> int:
    """6N + 12·L·T·C training FLOPs per token (PaLM appendix B), for MFU."""
    m = cfg.model
    return 6 * parameter_count(cfg, include_position=False) + 12 * m.n_layer * m.block_size * m.n_embd


# ================================================================================================= 2. model
# GPT-2: learned positions, pre-LN blocks, tanh-GELU, tied embedding/head, residual projections initialised with
# std 0.02/sqrt(2·n_layer). Hugging Face names, so checkpoints export to GPT2LMHeadModel. Weights are drawn from
# torch's global RNG in module order: the same seed gives bitwise the same model as lib/model.py.
# Two CPU speed-ups (measured in lib/attention.py and lib/fused_head.py): explicit softmax(QKᵀ)V attention while
# the scores stay small (CPU flash attention walks tiny blocks), and a chunked head + cross-entropy that never
# materialises the fp32 (B·T, V) logits. GPUs use flash SDPA and the plain loss (torch.compile fuses it there).
EXPLICIT_MAX_SCORES = 64 * 2**20           # B·H·T² attention scores a layer, above which CPUs use SDPA too
CPU_CHUNK_ROWS = 256                       # head rows per matmul chunk
SOFTMAX_BLOCK_BYTES = 4 * 2**20            # a CPU softmax pass works on blocks of rows this big (in cache)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d + causal mask) v for (B, H, T, d) tensors."""
    batch, heads, seq, _ = q.shape
    if q.device.type != "cpu" or batch * heads * seq * seq > EXPLICIT_MAX_SCORES:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    scores = (q * q.size(-1) ** -0.5) @ k.transpose(-2, -1)  # scaling q: T × d values, not T × T
    future = torch.full((seq, seq), float("-inf"), dtype=scores.dtype, device=q.device).triu(1)
    return torch.softmax(scores + future, dim=-1) @ v


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of x @ wᵀ, a chunk of rows at a time. The loss ends the graph, so the gradient of the
    logits, (softmax - onehot)/N, is known in the forward: it is stored in the compute dtype and the backward
    is just two matmuls."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype, chunk_rows):
        x, w = hidden.to(compute_dtype), weight.to(compute_dtype)
        n_rows, vocab = x.shape[0], w.shape[0]
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        row_losses = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        grad_logits = torch.empty(n_rows, vocab, dtype=compute_dtype, device=x.device) if want_grad else None
        block = max(1, SOFTMAX_BLOCK_BYTES // (4 * vocab))
        chunk_buffer = torch.empty(min(chunk_rows, n_rows), vocab, dtype=compute_dtype, device=x.device)  # reused
        for start in range(0, n_rows, chunk_rows):
            rows_here = min(chunk_rows, n_rows - start)
            logits = torch.mm(x[start:start + rows_here], w.t(), out=chunk_buffer[:rows_here])
            for first in range(0, logits.shape[0], block):
                part = logits[first:first + block].float()
                rows = slice(start + first, start + first + part.shape[0])
                ids, y = torch.arange(part.shape[0], device=x.device), targets[rows]
                probs = torch.softmax(part, dim=-1)
                # log-sum-exp from the softmax itself: lse = max(logit) - log(max(prob)), exact in fp32
                row_losses[rows].copy_(part.amax(dim=-1) - probs.amax(dim=-1).log() - part[ids, y])
                if want_grad:
                    g = grad_logits[rows]
                    g.copy_(probs)
                    g[ids, y] = (probs[ids, y] - 1.0).to(g.dtype)  # p_y - 1 in fp32, rounded once
        if want_grad:
            ctx.save_for_backward(x, w, grad_logits)
            ctx.hidden_dtype, ctx.weight_dtype = hidden.dtype, weight.dtype
        return row_losses.mean()

    @staticmethod
    def backward(ctx, grad_loss):
        x, w, grad_logits = ctx.saved_tensors
        scale = grad_loss.float() / x.shape[0]  # a 0-d tensor: no host sync
        grad_hidden = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_hidden = ((grad_logits @ w).float() * scale).to(ctx.hidden_dtype)
        if ctx.needs_input_grad[1]:  # the scale on the small (N, C) side: one cast of the (V, C) result
            grad_weight = (grad_logits.t() @ (x.float() * scale).to(x.dtype)).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v for all heads in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.c_proj.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, dim=2))  # (B, nh, T, hs) each
        y = causal_attention(q, k, v)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.c_proj.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg.n_embd), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg.n_embd), MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def lm_loss(hidden: torch.Tensor, head_weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy; logits upcast to fp32 so bf16 autocast does not degrade the loss."""
    if hidden.device.type == "cpu":  # the chunked head, in autocast's dtype (autocast itself off inside)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden.dtype
        with torch.autocast("cpu", enabled=False):
            return _LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), head_weight,
                                             targets.reshape(-1), dtype, CPU_CHUNK_ROWS)
    logits = F.linear(hidden, head_weight)
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=nn.LayerNorm(cfg.n_embd),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = 0.02 * ((2 * self.config.n_layer) ** -0.5 if getattr(module, "is_residual_projection", False) else 1)
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.config.block_size}")
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(0, T, dtype=torch.long, device=idx.device))
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """(logits, None) without targets; (None, mean loss) with them (the loss path skips the logits)."""
        x = self.hidden_states(idx)
        if targets is None:
            return self.lm_head(x), None
        return None, lm_loss(x, self.lm_head.weight, targets)


# ============================================================================================= 3. data prep
# A corpus becomes uint16 .npy shards: <source>_val_000000.npy (shard 0 = validation), <source>_train_000001.npy,
# ..., and manifest.json written last (build-nanogpt's layout). Each document is preceded by EOT. A small corpus
# holds out whole documents for validation: document i when ceil((i+1)·f) > ceil(i·f). The default directory
# name hashes the "recipe", so changed settings never reuse shards built from something else. The output is
# byte-identical to lib/shards.py; fineweb-edu (streamed through `datasets`) is left to `gpt-console prepare`.

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
EMBEDDED_EXTRACTION_VERSION = 2
SKIPPED_STDLIB_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"})
BATCH_CHARS, BATCH_DOCUMENTS = 1 << 20, 1024  # documents are tokenised (and progress reported) in batches


def get_tokenizer():
    try:
        import tiktoken
        return tiktoken.get_encoding("gpt2")
    except Exception as e:  # noqa: BLE001 - missing package, no network, bad cache: one message
        raise UserError(
            f"The GPT-2 BPE (tiktoken 'gpt2') could not be loaded offline ({type(e).__name__}: {e}). Set "
            "TIKTOKEN_CACHE_DIR to a directory holding the cached files, or run once with network so tiktoken "
            "caches them (pip install tiktoken if it is missing).") from None


def download(url: str, dest: Path, what: str, path_key: str, sha256: str | None = None) -> Path:
    """``url`` into ``dest`` (kept only if complete and, when given, matching the sha256)."""
    if dest.is_file() and (sha256 is None or hashlib.sha256(dest.read_bytes()).hexdigest() == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.part"
    try:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                tmp.write_bytes(response.read())
        except (OSError, ValueError) as e:
            raise UserError(f"Could not download {what} from {url} ({e}). If this machine is offline, fetch it "
                            f'elsewhere and set {path_key} = "/path/to/file" in the TOML.') from None
        if sha256 is not None and hashlib.sha256(tmp.read_bytes()).hexdigest() != sha256:
            raise UserError(f"The download of {what} from {url} is not the expected file (sha256 mismatch); "
                            f"nothing was kept. Set {path_key} to a local copy.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def input_files(spec: str) -> list[Path]:
    """data.path for 'files': a file, a directory (recursively) or a glob of .txt/.jsonl files, sorted."""
    expanded = os.path.expanduser(spec)
    path = Path(expanded)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".jsonl")]
    else:
        files = [path] if path.is_file() else [Path(p) for p in glob.glob(expanded, recursive=True)
                                               if Path(p).is_file()]
    if not files or any(p.suffix not in (".txt", ".jsonl") for p in files):
        raise UserError(f"data.path = '{spec}' matches no files, or files that are neither .txt nor .jsonl. Give a "
                        "file, directory or glob of .txt (one document per file) or .jsonl ({\"text\": ...}) files.")
    return sorted(files, key=lambda p: p.as_posix())


def shakespeare_file(cfg: TrainingConfig) -> Path:
    if cfg.data.path:
        path = Path(os.path.expanduser(cfg.data.path))
        if not path.is_file():
            raise UserError(f"data.path = '{cfg.data.path}' does not exist or is not a file. Point it at a copy of "
                            "Tiny Shakespeare, or leave it empty to download the file.")
        return path
    return download(SHAKESPEARE_URL, Path(os.path.expanduser(cfg.data.cache_dir)) / "tinyshakespeare.txt",
                    "Tiny Shakespeare", "data.path", SHAKESPEARE_SHA256)


def _files_fingerprint(spec: str, files: list[Path]) -> dict:
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": spec, "files": len(files), "stat_sha256": digest.hexdigest()}


def shard_recipe(cfg: TrainingConfig) -> dict:
    """Everything that determines the shards' content (stored in the manifest, hashed into the directory name)."""
    d = cfg.data
    if d.source == "embedded":
        fingerprint = {"python": "%d.%d.%d" % sys.version_info[:3], "extraction": EMBEDDED_EXTRACTION_VERSION}
    elif d.source == "shakespeare":
        fingerprint = _files_fingerprint(d.path, [shakespeare_file(cfg)]) if d.path else {"sha256": SHAKESPEARE_SHA256}
    elif d.source == "fineweb-edu":
        fingerprint = {"dataset": "HuggingFaceFW/fineweb-edu", "name": "sample-10BT", "split": "train"}
    else:
        fingerprint = _files_fingerprint(d.path, input_files(d.path))
    return {"format": 1, "source": d.source, "input": fingerprint, "tokenizer": "gpt2",
            "val_fraction": d.val_fraction, "shard_tokens": d.shard_tokens, "max_tokens": d.max_tokens}


def shard_dir_for(cfg: TrainingConfig, recipe: dict | None = None) -> Path:
    if cfg.data.shard_dir:
        return Path(os.path.expanduser(cfg.data.shard_dir))
    key = hashlib.sha256(json.dumps(recipe or shard_recipe(cfg), sort_keys=True).encode()).hexdigest()[:10]
    return Path(os.path.expanduser(cfg.data.cache_dir)) / "shards" / f"{cfg.data.source}-{key}"


def embedded_documents():
    """Python's own documentation: pydoc topics, stdlib docstrings (via ast), built-in C modules' docstrings."""
    with contextlib.suppress(ImportError):
        from pydoc_data.topics import topics
        yield from (topics[name].strip() + "\n" for name in sorted(topics))
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root) if root.is_dir() else ():
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_STDLIB_DIRS)
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):
            continue
        parts = [f"{module}\n\n{doc}"] if (doc := ast.get_docstring(tree)) else []
        parts += [f"{kind}{module}.{name}{sig}\n" + _indent(doc)
                  for kind, name, sig, doc in _definitions(tree.body, "")]
        if parts:
            yield "\n\n".join(parts) + "\n"
    for name in sorted(sys.builtin_module_names):
        if name.startswith("_") or name == "xxsubtype":
            continue
        try:
            module = __import__(name)
        except ImportError:
            continue
        parts = [f"{name}\n\n{inspect.cleandoc(module.__doc__)}"] if module.__doc__ else []
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            original = getattr(module, f"__{attr}__", None) if attr.endswith("hook") else None  # tools swap hooks
            obj = original or getattr(module, attr, None)
            if not (inspect.isbuiltin(obj) or inspect.isclass(obj)) or getattr(obj, "__module__", name) != name:
                continue
            if isinstance(obj.__doc__, str) and obj.__doc__:
                parts.append(f"{name}.{attr}\n" + _indent(inspect.cleandoc(obj.__doc__)))
            for member_name, member in sorted(vars(obj).items()) if inspect.isclass(obj) else ():
                mdoc = getattr(member, "__doc__", None)
                if not member_name.startswith("_") and isinstance(mdoc, str) and callable(member):
                    parts.append(f"{name}.{attr}.{member_name}\n" + _indent(inspect.cleandoc(mdoc)))
        if parts:
            yield "\n\n".join(parts) + "\n"


def _indent(doc: str) -> str:
    return "\n".join("    " + line if line.strip() else "" for line in doc.splitlines())


def _definitions(body: list, prefix: str):
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if isinstance(node, ast.ClassDef):
                bases = ", ".join(ast.unparse(b) for b in node.bases)
                kind, sig = "class ", f"({bases})" if bases else ""
            else:
                kind = "async def " if isinstance(node, ast.AsyncFunctionDef) else "def "
                sig = f"({ast.unparse(node.args)})"
            if doc := ast.get_docstring(node):
                yield kind, prefix + node.name, sig, doc
            yield from _definitions(node.body, prefix + node.name + ".")


def documents(cfg: TrainingConfig):
    """The corpus's documents in their fixed order (empty ones skipped)."""
    d = cfg.data
    if d.source == "embedded":
        docs = embedded_documents()
    elif d.source == "shakespeare":  # passages of ~8 KiB cut at blank lines, so val holds out whole passages
        text, docs, start = shakespeare_file(cfg).read_text(encoding="utf-8", errors="replace"), [], 0
        while start < len(text):
            cut = text.find("\n\n", start + 8192)
            docs.append(text[start:len(text) if cut < 0 else cut + 2])
            start += len(docs[-1])
    else:
        docs = (t for p in input_files(d.path) for t in _file_texts(p))
    return (doc for doc in docs if doc)


def _file_texts(path: Path):
    if path.suffix != ".jsonl":
        yield path.read_text(encoding="utf-8", errors="replace")
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError):
                    text = None
                if not isinstance(text, str):
                    raise UserError(f'{path}, line {lineno}: expected a JSON object with a "text" string. Each line '
                                    'of a .jsonl corpus must look like {"text": "..."}.')
                yield text


def ensure_shards(cfg: TrainingConfig, report) -> Path:
    """The shard directory for ``cfg``, prepared first if missing (in a temp dir renamed into place)."""
    recipe = shard_recipe(cfg)
    shard_dir = shard_dir_for(cfg, recipe)
    manifest = read_manifest(shard_dir)
    if manifest is not None and manifest.get("complete"):
        if manifest.get("recipe") not in (None, recipe):
            raise UserError(f"The shards in {shard_dir} were prepared with different data settings. Delete that "
                            "directory to prepare it again, or clear data.shard_dir.")
        return shard_dir
    if shard_files(shard_dir, "train") and shard_files(shard_dir, "val"):
        return shard_dir  # shards without a manifest (build-nanogpt's FineWeb): used as they are
    if shard_dir.exists() and (not shard_dir.is_dir() or any(shard_dir.iterdir())):
        raise UserError(f"{shard_dir} exists but holds no complete token shards; it was left alone. Point "
                        "data.shard_dir elsewhere, or delete it if it is a leftover.")
    if cfg.data.source == "fineweb-edu":
        raise UserError(f"No fineweb-edu shards in {shard_dir}. The one-file trainer does not stream FineWeb-Edu: "
                        "prepare them first with  gpt-console prepare CONFIG  (or python -m "
                        "tui_trainer.training.prepare --config CONFIG), then start again.")
    enc = get_tokenizer()
    shard_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(shard_dir.parent / f".{shard_dir.name}.lock", "a+") as lock:  # one preparer at a time
        with contextlib.suppress(ImportError):
            import fcntl
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if (read_manifest(shard_dir) or {}).get("complete"):
            return shard_dir  # another process built it while we waited
        for stale in shard_dir.parent.glob(f".{shard_dir.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = shard_dir.parent / f".{shard_dir.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            _build_shards(cfg, enc, tmp, recipe, report)
            if shard_dir.is_dir():
                shard_dir.rmdir()
            os.rename(tmp, shard_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return shard_dir


def _build_shards(cfg: TrainingConfig, enc, out_dir: Path, recipe: dict, report) -> None:
    d, source, size = cfg.data, cfg.data.source, cfg.data.shard_tokens
    shards, counts, started = [], {"train": 0, "val": 0}, time.monotonic()
    bufs = {s: np.empty(size, dtype=np.uint16) for s in ("val", "train")}
    filled, index, total, n_docs = {"val": 0, "train": 0}, {"val": 0, "train": 1}, 0, 0

    def flush(split: str) -> None:
        if filled[split]:
            name = f"{source}_{split}_{index[split]:06d}.npy"
            np.save(out_dir / name, bufs[split][:filled[split]])
            shards.append({"file": name, "split": split, "tokens": int(filled[split])})
            index[split], filled[split] = index[split] + 1, 0

    def add(split: str, tokens: np.ndarray) -> None:  # documents span shard edges
        while len(tokens):
            take = min(len(tokens), size - filled[split])
            bufs[split][filled[split]:filled[split] + take] = tokens[:take]
            filled[split] += take
            tokens = tokens[take:]
            if filled[split] == size:
                flush(split)

    def tokens_of(split: str) -> int:
        return sum(s["tokens"] for s in shards if s["split"] == split) + filled[split]

    batch, chars, docs = [], 0, documents(cfg)
    while True:
        doc = next(docs, None)
        if doc is not None:
            batch.append(doc)
            chars += len(doc)
            if chars < BATCH_CHARS and len(batch) < BATCH_DOCUMENTS:
                continue
        if not batch:
            break
        for ids in enc.encode_ordinary_batch(batch, num_threads=1):
            tokens = np.array([EOT] + ids, dtype=np.uint16)
            if d.max_tokens and total + len(tokens) > d.max_tokens:
                tokens = tokens[:d.max_tokens - total]
            f, i = d.val_fraction, n_docs
            held_out = math.ceil((i + 1) * f) > math.ceil(i * f) if f > 0 else i == 0
            split = "val" if held_out and tokens_of("val") + len(tokens) <= size else "train"
            add(split, tokens)
            counts[split] += 1
            n_docs, total = n_docs + 1, total + len(tokens)
            if d.max_tokens and total >= d.max_tokens:
                break
        report(source, n_docs, total, time.monotonic() - started, False)
        batch, chars = [], 0
        if doc is None or (d.max_tokens and total >= d.max_tokens):
            break
    flush("val"), flush("train")
    n_val, n_train = tokens_of("val"), tokens_of("train")
    if not any(s["split"] == "val" for s in shards) or not any(s["split"] == "train" for s in shards):
        raise UserError(f"The '{source}' corpus is too small to split: {n_docs} documents, {total} tokens gave "
                        f"{n_val} validation and {n_train} training tokens. Add more text, raise data.max_tokens "
                        "(0 = no cap), or change data.val_fraction.")
    shards.sort(key=lambda s: s["split"] != "val")  # val first, as the lib writes them
    manifest = {"source": source, "tokenizer": "gpt2", "eot": EOT, "dtype": "uint16", "shards": shards,
                "documents": counts, "tokens": {"train": n_train, "val": n_val}, "recipe": recipe,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "complete": True}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    report(source, n_docs, total, time.monotonic() - started, True)


def read_manifest(shard_dir: Path) -> dict | None:
    try:
        return json.loads((shard_dir / "manifest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:
        raise UserError(f"{shard_dir / 'manifest.json'} is unreadable ({e}). Delete {shard_dir} and prepare the "
                        "data again.") from None


def shard_files(shard_dir: Path, split: str) -> list[Path]:
    """One split's shards in order: from the manifest, else by globbing *_<split>_*.npy."""
    manifest = read_manifest(shard_dir)
    if manifest is not None:
        return [shard_dir / s["file"] for s in manifest["shards"] if s["split"] == split]
    return sorted(shard_dir.glob(f"*_{split}_*.npy"))


# =============================================================================================== 4. loader
# A window is B·T+1 consecutive tokens of one shard starting at a multiple of B·T. Windows get a global index:
# epoch e holds [e·N, (e+1)·N), shard after shard in the epoch's shard order, each shard's windows in the epoch's
# window order (sequential, or with shuffling the seeded permutations below). Rank r reads window position + r,
# then position advances by the world size W: at step s, micro-step m, rank r reads s·W·A + m·W + r, so 2 ranks
# × 1 micro-step see exactly the windows of 1 rank × 2 micro-steps, and one position resumes every rank.

def open_shard(path: Path) -> np.ndarray:
    try:
        tokens = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"Token shard {path} is missing or unreadable ({e}). Delete its directory and prepare "
                        "the data again.") from None
    if tokens.dtype != np.uint16 or tokens.ndim != 1:
        raise UserError(f"Token shard {path} holds {tokens.dtype} {tokens.shape}; shards must be 1-D uint16 arrays.")
    return tokens


class ShardLoader:
    def __init__(self, files: list[Path], B: int, T: int, rank: int, world_size: int, shuffle: bool, seed: int,
                 split: str):
        self.files, self.B, self.T, self.rank, self.world_size = files, B, T, rank, world_size
        self.shuffle, self.seed, self.window = shuffle, seed, B * T
        self.shard_tokens = [len(open_shard(f)) for f in files]
        self.shard_windows = [max(0, (n - 1) // self.window) for n in self.shard_tokens]
        self.windows_per_epoch = sum(self.shard_windows)
        if self.windows_per_epoch == 0:
            raise UserError(f"The {split} shards hold no complete batch window of micro_batch_size × block_size + 1 "
                            f"= {self.window + 1:,} tokens. Lower optim.micro_batch_size or model.block_size"
                            + (", or raise data.val_fraction." if split == "val" else ", or use more data."))
        self.position = 0  # global index of the window rank 0 reads next
        self.pin = False
        self._mmaps: dict[int, np.ndarray] = {}

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        shard, start = self.locate(self.position + self.rank)
        self.position += self.world_size
        if shard not in self._mmaps:
            if len(self._mmaps) >= 4:  # a step's ranks touch at most a couple of shards at a time
                self._mmaps.pop(next(iter(self._mmaps)))
            self._mmaps[shard] = open_shard(self.files[shard])
        buf = torch.from_numpy(self._mmaps[shard][start:start + self.window + 1].astype(np.int64))
        x, y = buf[:-1].view(self.B, self.T), buf[1:].view(self.B, self.T)
        return (x.pin_memory(), y.pin_memory()) if self.pin else (x, y)

    def reset(self) -> None:
        self.position = 0

    @functools.lru_cache(maxsize=4)
    def _layout(self, epoch: int) -> tuple[list[int], list[int]]:
        """The epoch's shard order (shards too short for a window dropped) and each slot's first window."""
        order = list(range(len(self.files)))
        if self.shuffle:
            order = [int(i) for i in np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.files))]
        order = [i for i in order if self.shard_windows[i] > 0]
        return order, np.cumsum([0] + [self.shard_windows[i] for i in order[:-1]]).tolist()

    @functools.lru_cache(maxsize=4)
    def _permutation(self, epoch: int, shard: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 1, shard]).permutation(self.shard_windows[shard])

    def locate(self, window: int) -> tuple[int, int]:
        """Global window index -> (shard index, first token offset in it)."""
        epoch, k = divmod(window, self.windows_per_epoch)
        order, starts = self._layout(epoch)
        slot = bisect.bisect_right(starts, k) - 1
        shard, j = order[slot], k - starts[slot]
        if self.shuffle:
            j = int(self._permutation(epoch, shard)[j])
        return shard, j * self.window

    def state_dict(self) -> dict:
        return {"position": self.position, "windows_per_epoch": self.windows_per_epoch,
                "tokens_per_window": self.window, "shuffle": self.shuffle, "seed": self.seed,
                "shards": [[f.name, n] for f, n in zip(self.files, self.shard_tokens)]}

    def load_state_dict(self, state: dict) -> None:
        """Continue where ``state`` left off; a changed batch shape continues at the same fraction of the epoch."""
        if [list(s) for s in state.get("shards", [])] != [[f.name, n] for f, n in zip(self.files, self.shard_tokens)]:
            raise UserError("The checkpoint's data position belongs to different token shards than the ones "
                            "configured now, so training cannot continue where it stopped. Resume with the data "
                            "settings the run started with (see its config.toml), or start a new run.")
        position = int(state["position"])
        if state.get("tokens_per_window") != self.window:
            epoch, k = divmod(position, int(state["windows_per_epoch"]))
            position = epoch * self.windows_per_epoch + k * self.windows_per_epoch // int(state["windows_per_epoch"])
        self.position = position


def build_dataloaders(cfg: TrainingConfig, rank: int, world_size: int) -> tuple[ShardLoader, ShardLoader]:
    shard_dir = shard_dir_for(cfg)
    train_files, val_files = shard_files(shard_dir, "train"), shard_files(shard_dir, "val")
    if not train_files or not val_files:
        raise UserError(f"No {'training' if not train_files else 'validation'} shards in {shard_dir}. Prepare them "
                        "with  gpt-console prepare CONFIG, or point data.shard_dir at *_val_*.npy + *_train_*.npy "
                        "shards.")
    B, T = cfg.optim.micro_batch_size, cfg.model.block_size
    train = ShardLoader(train_files, B, T, rank, world_size, cfg.data.shuffle, cfg.system.seed, "train")
    val = ShardLoader(val_files, B, T, rank, world_size, False, cfg.system.seed, "val")
    device = cfg.system.device  # pinned memory only helps batches bound for a CUDA device
    train.pin = val.pin = (device == "auto" or device.startswith("cuda")) and torch.cuda.is_available()
    return train, val


# ========================================================================================== 5. distributed
# Under torchrun (RANK, LOCAL_RANK, WORLD_SIZE set) join the process group: nccl for CUDA, gloo for CPU. Each
# rank takes the accelerator numbered by its local rank. Otherwise one process and no group.

@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    ddp_model: Any = None  # released before the group is destroyed (gloo work objects abort otherwise)

    @property
    def is_distributed(self) -> bool:
        return self.backend is not None


def under_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def setup_distributed(setting: str) -> DistContext:
    local_rank, distributed = int(os.environ.get("LOCAL_RANK", 0)), under_torchrun()
    accelerator = getattr(torch, "accelerator", None)
    if setting != "auto":
        kind = setting.split(":")[0]
    elif accelerator is not None:
        kind = accelerator.current_accelerator().type if accelerator.is_available() else "cpu"
    else:
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind in ("cpu", "mps"):
        device = torch.device(kind)
    else:
        device = torch.device(kind, local_rank) if distributed else \
            torch.device(setting if ":" in setting else f"{kind}:0")
    available = {"cuda": torch.cuda.is_available, "mps": lambda: torch.backends.mps.is_available(),
                 "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available()}.get(device.type, lambda: True)
    if not available():
        raise UserError(f"system.device asks for {device} but this PyTorch cannot use it — set system.device = "
                        "\"auto\" or \"cpu\" (or install a build of PyTorch for that device).")
    if not distributed:
        return DistContext(device=device)
    if device.type in ("cuda", "xpu"):
        getattr(torch, device.type).set_device(device)
    get_default = getattr(dist, "get_default_backend_for_device", None)
    backend = get_default(device) if get_default else ("nccl" if device.type == "cuda" else "gloo")
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(minutes=30.0)}
    if backend == "nccl":
        kwargs["device_id"] = device
    dist.init_process_group(**kwargs)
    return DistContext(int(os.environ["RANK"]), local_rank, int(os.environ["WORLD_SIZE"]), device, backend)


def barrier(ctx: DistContext) -> None:
    if ctx.is_distributed:
        dist.barrier(device_ids=[ctx.device.index]) if ctx.backend == "nccl" else dist.barrier()


def teardown_distributed(ctx: DistContext) -> None:
    ctx.ddp_model = None
    gc.collect()
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


# Precision: bf16 autocast where the hardware multiplies bf16 natively (CUDA with bf16, CPUs with AMX-BF16 or
# AVX512-BF16), fp32 elsewhere. Weights, gradients and AdamW state stay fp32 either way.
def cpu_has_native_bf16() -> bool:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("flags"):
                return bool({"amx_bf16", "avx512_bf16"} & set(line.split(":", 1)[1].split()))
    return "AMX" in torch.backends.cpu.get_cpu_capability().upper()


def configure_precision(setting: str, tf32: bool, device: torch.device):
    if setting != "auto":
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[setting]
    elif device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32
    if device.type == "cuda" and tf32:
        matmul = torch.backends.cuda.matmul
        if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
            matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
        else:
            matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if dtype == torch.float32:
        return dtype, contextlib.nullcontext
    return dtype, functools.partial(torch.autocast, device_type=device.type, dtype=dtype)


def configure_optimizer(model: nn.Module, cfg: TrainingConfig, device_type: str) -> torch.optim.AdamW:
    """AdamW, weight decay on >= 2-D weights only (matmuls, embeddings), none on biases and LayerNorms."""
    params = [p for p in model.parameters() if p.requires_grad]  # the tied weight appears once
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.optim.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # The fused kernel makes one pass over weights, gradients and moments (CUDA, and CPU: 14 vs 50 ms a step).
    fused = cfg.optim.fused == "on" or (cfg.optim.fused == "auto" and device_type in ("cuda", "cpu"))
    adamw = functools.partial(torch.optim.AdamW, groups, lr=cfg.optim.max_lr, eps=cfg.optim.eps,
                              betas=(cfg.optim.beta1, cfg.optim.beta2))
    try:
        return adamw(fused=fused)
    except RuntimeError as e:
        if not fused:
            raise
        if cfg.optim.fused == "auto":  # an older torch without this device's kernel: the plain one is fine
            return adamw(fused=False)
        raise UserError(f"optim.fused = \"on\" but this PyTorch has no fused AdamW for {device_type} ({e}) — set "
                        "optim.fused = \"auto\" or \"off\"") from None


def get_lr(step: int, cfg: TrainingConfig) -> float:
    """Linear warmup to max_lr over warmup_steps, then cosine/linear decay to max_lr·min_lr_ratio at max_steps."""
    max_lr, warmup, max_steps = cfg.optim.max_lr, cfg.schedule.warmup_steps, cfg.schedule.max_steps
    min_lr = max_lr * cfg.optim.min_lr_ratio
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if cfg.schedule.kind == "constant":
        return max_lr
    if step >= max_steps:
        return min_lr
    progress = (step - warmup) / max(1, max_steps - warmup)
    coeff = 1.0 - progress if cfg.schedule.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr + coeff * (max_lr - min_lr)


# MFU: achieved FLOP/s over the device's dense datasheet peak; unknown devices (and CPUs) report null.
_T = 1e12
PEAK_FLOPS = [  # (pattern on the upper-cased device name, (bfloat16, tf32, float32) dense FLOP/s)
    (r"H100.*NVL", (835.5 * _T, 417.5 * _T, 60.0 * _T)), (r"H100.*PCIE", (756.5 * _T, 378.0 * _T, 51.0 * _T)),
    (r"H100|H800", (989.4 * _T, 494.7 * _T, 66.9 * _T)), (r"H200", (989.4 * _T, 494.7 * _T, 66.9 * _T)),
    (r"B200", (2250.0 * _T, None, None)), (r"A100|A800", (312.0 * _T, 156.0 * _T, 19.5 * _T)),
    (r"\bA10\b", (125.0 * _T, 62.5 * _T, 31.2 * _T)), (r"L40S", (362.05 * _T, 183.0 * _T, 91.6 * _T)),
    (r"\bL4\b", (121.0 * _T, 60.0 * _T, 30.3 * _T)), (r"V100", (None, None, 15.7 * _T)),
    (r"MI300X", (1307.4 * _T, 653.7 * _T, 163.4 * _T)),
]


def device_name(device: torch.device) -> str:
    if device.type in ("cuda", "xpu"):
        return getattr(torch, device.type).get_device_name(device)
    if device.type == "cpu":
        with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        import platform
        return platform.processor() or platform.machine() or "cpu"
    return device.type


def peak_flops(name: str, device_type: str, dtype: torch.dtype, tf32: bool) -> float | None:
    if device_type == "cpu" and dtype in (torch.float32, torch.bfloat16):
        return cpu_peak_flops(dtype)
    if device_type != "cuda" or dtype not in (torch.bfloat16, torch.float32):
        return None
    column = 0 if dtype == torch.bfloat16 else 1 if tf32 else 2
    return next((peaks[column] for pattern, peaks in PEAK_FLOPS if re.search(pattern, name.upper())), None)


def cpu_peak_flops(dtype: torch.dtype) -> float:
    """A CPU has no datasheet peak: the best FLOP/s of square matmuls (~1 s probe) with this rank's threads, cached
    per CPU model / torch / threads / dtype in $XDG_CACHE_HOME/gpt-console/cpu_peak.json (shared with lib/peak.py)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            key, sep, value = line.partition(":")
            if not sep and fields:
                break  # the end of the first processor's block
            if sep:
                fields.setdefault(key.strip(), value.strip())
    import platform
    name = fields.get("model name") or platform.processor() or platform.machine() or "cpu"
    model = " / ".join([name] + [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields])
    key = (f"{model} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
           f"{str(dtype).replace('torch.', '')}")
    path = Path(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"))
    path = path / "gpt-console" / "cpu_peak.json"

    def read() -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError, TypeError):
            return {}
    if read().get(key, 0) > 0:
        return read()[key]
    best = 0.0
    for n in (1024, 2048):  # the best rate, not the mean: other load can only slow a probe down
        a, b, out = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype), torch.empty(n, n, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up
        deadline, reps = time.perf_counter() + 0.25, 0
        while reps < 2 or time.perf_counter() < deadline:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best, reps = max(best, 2 * n ** 3 / (time.perf_counter() - t0)), reps + 1
    with contextlib.suppress(OSError):  # a read-only home: the figure still serves this process
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".cpu_peak.{os.getpid()}")
        tmp.write_text(json.dumps({**read(), key: best}, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    return best


# ============================================================================================ 6. evaluation
# All on the raw model (never DDP; compiled or not), in eval mode under no_grad, one host sync per call.

@contextlib.contextmanager
def evaluating(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return t


def logits_at(model: nn.Module, idx: torch.Tensor, rows, positions) -> torch.Tensor:
    """Logits at (rows, positions) only: the 50304-wide head runs on just the positions asked for."""
    hidden_states, head = getattr(model, "hidden_states", None), getattr(model, "lm_head", None)
    if callable(hidden_states) and head is not None:
        return head(hidden_states(idx)[rows, positions])
    logits, _ = model(idx)
    return logits[rows, positions]


def evaluate_loss(model: nn.Module, val_loader: ShardLoader, steps: int, device, autocast) -> float:
    """Mean loss over the first ``steps`` validation micro-batches (the same tokens every time), over ranks."""
    val_loader.reset()
    total = torch.zeros((), dtype=torch.float32, device=device)
    with evaluating(model):
        for _ in range(steps):
            x, y = val_loader.next_batch()
            with autocast():
                _, loss = model(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            total += loss.detach().float()
    total /= steps
    return all_reduce_sum(total).item() / (dist.get_world_size() if dist.is_initialized() else 1)


# HellaSwag: a context and four endings; the model "chooses" the ending with the lowest loss over its tokens
# (acc: total loss, acc_norm: mean loss per token, build-nanogpt's number). Examples are split across ranks.
def load_hellaswag(cfg: TrainingConfig) -> list[dict]:
    if cfg.eval.hellaswag_path:
        path = Path(os.path.expanduser(cfg.eval.hellaswag_path))
        if not path.is_file():
            raise UserError(f"eval.hellaswag_path = '{cfg.eval.hellaswag_path}' does not exist or is not a file.")
    else:
        path = download(HELLASWAG_URL, Path(os.path.expanduser(cfg.data.cache_dir)) / "hellaswag" /
                        "hellaswag_val.jsonl", "the HellaSwag validation set", "eval.hellaswag_path")
    with open(path, "rb") as f:
        opener = gzip.open if f.read(2) == b"\x1f\x8b" else open
    examples = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                ex = {"ctx": row["ctx"], "endings": list(row["endings"]), "label": int(row["label"])}
                assert isinstance(ex["ctx"], str) and len(ex["endings"]) == 4 and 0 <= ex["label"] < 4
                assert all(isinstance(e, str) for e in ex["endings"])
            except (ValueError, KeyError, TypeError, AssertionError):
                raise UserError(f"{path}, line {lineno}: not a HellaSwag example (a \"ctx\", 4 \"endings\", a "
                                "\"label\" 0-3). Is eval.hellaswag_path the right file?") from None
            examples.append(ex)
    if not examples:
        raise UserError(f"HellaSwag file {path} holds no examples.")
    n, count = len(examples), cfg.eval.hellaswag_examples  # an even spread over the file (0 = all)
    return examples if count <= 0 or count >= n else [examples[i * n // count] for i in range(count)]


def render_example(example: dict, enc, block_size: int):
    """Four rows ctx + " " + ending (the last block_size tokens), masks over the ending tokens, the label."""
    ctx, rows, masks = enc.encode(example["ctx"]), [], []
    for ending in example["endings"]:
        end = enc.encode(" " + ending)
        rows.append((ctx + end)[-block_size:])
        masks.append(([0] * len(ctx) + [1] * len(end))[-block_size:])
    return rows, masks, int(example["label"])


def run_hellaswag_eval(model, examples, device, autocast, rank: int, world_size: int, batch_tokens=4096) -> dict:
    enc = get_tokenizer()
    block_size = int(model.transformer.wpe.weight.shape[0])
    rendered = [render_example(ex, enc, block_size) for ex in examples[rank::world_size]]
    batches, batch, longest = [], [], 0  # consecutive examples, 4 rows × longest row <= batch_tokens
    for item in rendered:
        width = max(len(r) for r in item[0])
        if batch and 4 * (len(batch) + 1) * max(longest, width) > batch_tokens:
            batches.append(batch)
            batch, longest = [], 0
        batch.append(item)
        longest = max(longest, width)
    batches += [batch] if batch else []
    counts = torch.zeros(3, dtype=torch.long, device=device)  # correct, correct_norm, total
    with evaluating(model):
        for batch in batches:
            counts += _score_batch(model, batch, device, autocast)
    correct, correct_norm, total = (int(v) for v in all_reduce_sum(counts).tolist())
    return {"correct": correct, "correct_norm": correct_norm, "total": total,
            "acc": correct / total if total else 0.0, "acc_norm": correct_norm / total if total else 0.0}


def _score_batch(model, batch, device, autocast) -> torch.Tensor:
    rows = [row for rows, _, _ in batch for row in rows]
    masks = [mask for _, masks, _ in batch for mask in masks]
    tokens = torch.zeros((len(rows), max(len(r) for r in rows)), dtype=torch.long)  # right-padded
    mask = torch.zeros(tokens.shape, dtype=torch.bool)
    for r, (row, m) in enumerate(zip(rows, masks)):
        tokens[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), torch.tensor(m, dtype=torch.bool)
    # Token i is predicted by the logits at i-1: found on the CPU, so the device never waits on a shape.
    pair_rows, pair_next = mask[:, 1:].nonzero(as_tuple=True)
    pair_targets = tokens[pair_rows, pair_next + 1]
    ending_lengths = torch.bincount(pair_rows, minlength=len(rows)).clamp(min=1)
    labels = torch.tensor([label for _, _, label in batch]).to(device, non_blocking=True)
    pair_rows_d = pair_rows.to(device, non_blocking=True)
    with autocast():
        picked = logits_at(model, tokens.to(device, non_blocking=True), pair_rows_d,
                           pair_next.to(device, non_blocking=True))
    losses = F.cross_entropy(picked.float(), pair_targets.to(device, non_blocking=True), reduction="none")
    sum_loss = torch.zeros(len(rows), dtype=torch.float32, device=device).index_add_(0, pair_rows_d, losses)
    mean_loss = sum_loss / ending_lengths.to(device, non_blocking=True)
    correct = (sum_loss.view(-1, 4).argmin(dim=1) == labels).sum()
    correct_norm = (mean_loss.view(-1, 4).argmin(dim=1) == labels).sum()
    return torch.stack([correct, correct_norm, torch.tensor(len(batch), device=device)])


def generate_samples(model, enc, prompt: str, count: int, max_tokens: int, top_k: int, temperature: float,
                     seed: int, device, autocast) -> list[str]:
    """Top-k continuations of ``prompt`` (prompt excluded), from a private generator: the same seed, the same text."""
    block_size = int(model.transformer.wpe.weight.shape[0])
    prompt_tokens = enc.encode(prompt) if prompt else [EOT]
    idx = torch.tensor(prompt_tokens, dtype=torch.long).unsqueeze(0).repeat(count, 1).to(device)
    generator = torch.Generator(device=idx.device).manual_seed(seed)
    with evaluating(model):
        for _ in range(max_tokens):
            with autocast():
                logits = logits_at(model, idx[:, -block_size:], slice(None), -1)
            logits = logits[:, :enc.n_vocab].float() / temperature  # padded vocabulary rows are never sampled
            top_logits, top_ids = torch.topk(logits, min(top_k, enc.n_vocab), dim=-1)
            choice = torch.multinomial(F.softmax(top_logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, torch.gather(top_ids, -1, choice)], dim=1)
    return [enc.decode(row[len(prompt_tokens):]) for row in idx.tolist()]


# ================================================================================================ 7. run dir
# <run_dir>/config.toml, events.jsonl, checkpoints/step-NNNNNNNN/{checkpoint.pt, config.toml, meta.json},
# control/<id>.json. A checkpoint is written in a temp dir renamed into place; meta.json, written last, marks it
# complete. checkpoint.pt is one plain dict (torch.load(weights_only=True)), the same as lib/checkpoint.py writes.

def list_checkpoints(root: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in (root.iterdir() if root.is_dir() else ())
             if (m := re.fullmatch(r"step-(\d{8,})", p.name)) and (p / "meta.json").is_file()
             and (p / "checkpoint.pt").is_file()]
    return [p for _, p in sorted(found)]


def checkpoint_to_resume(root: Path, resume: bool) -> Path | None:
    latest = (list_checkpoints(root) or [None])[-1]
    if resume:
        return latest
    if latest is not None or any(root.glob("step-*")):
        raise UserError(f"{root} already holds checkpoints (newest: {latest.name if latest else 'an incomplete one'}) "
                        "and this run would start fresh over them. To continue that run, pass --resume or set "
                        "checkpoint.resume = \"auto\"; to start a new one, choose another --run-dir.")
    return None


def save_resolved_config(run_dir: Path, text: str) -> str | None:
    """Write <run_dir>/config.toml; a different existing one is kept as config.toml.N (returned)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path, kept = run_dir / "config.toml", None
    if path.exists():
        with contextlib.suppress(ConfigError):
            if config_from_dict(read_toml(path)) == config_from_dict(parse_toml_text(text)):
                return None
        n = 1
        while path.with_name(f"config.toml.{n}").exists():
            n += 1
        kept = f"config.toml.{n}"
        path.rename(path.with_name(kept))
    path.with_name(".config.toml.tmp").write_text(text, encoding="utf-8")
    os.replace(path.with_name(".config.toml.tmp"), path)
    return kept


def gather_rng_states(device: torch.device) -> list[dict]:
    """Every rank's generator states in rank order (a collective when distributed)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    mine = {"python": random.getstate(), "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    if not dist.is_initialized():
        return [mine]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, mine)
    return states


def restore_rng_state(state: dict, device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(root: Path, step: int, payload: dict, config_toml: str, keep_last: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    if (final / "meta.json").is_file() and (final / "checkpoint.pt").is_file():
        return final  # e.g. a stop right after a scheduled save: the same state
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    meta = {"format": CHECKPOINT_FORMAT, "step": step, "tokens": payload["tokens"], "time": time.time()}
    for name, write in (("checkpoint.pt", lambda f: torch.save(payload, f)),
                        ("config.toml", lambda f: f.write(config_toml.encode("utf-8"))),
                        ("meta.json", lambda f: f.write(json.dumps(meta).encode("utf-8")))):
        with open(tmp / name, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(root, os.O_RDONLY)
        os.fsync(fd), os.close(fd)
    for stale in root.glob(".tmp-step-*"):  # temp dirs of writers that died
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    for old in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Events: one JSON object a line in <run_dir>/events.jsonl, written by rank 0 — {"v", "seq", "t", "type", ...}.
# seq continues after the last line of an existing log (a resume); a torn last line is closed off first.
class Events:
    def __init__(self, path: Path, enabled: bool):
        self.enabled, self.last_emit, self.file = enabled, time.time(), None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tail = b""
        if path.exists():
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 65536))
                tail = f.read()
        seqs = (json.loads(line).get("seq") for line in reversed(tail.splitlines()) if _is_json(line))
        last = next((s for s in seqs if isinstance(s, int)), None)
        self.seq = 0 if last is None else last + 1
        self.file = open(path, "a", encoding="utf-8")
        if tail and not tail.endswith(b"\n"):
            self.file.write("\n")

    def emit(self, type: str, **payload: Any) -> None:
        if self.file is None:
            return
        self.last_emit = now = time.time()
        line = json.dumps({"v": SCHEMA_VERSION, "seq": self.seq, "t": now, "type": type, **payload},
                          ensure_ascii=False, default=str)
        self.seq += 1
        with contextlib.suppress(OSError):  # a full disk must not kill training
            self.file.write(line + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _is_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


# Control requests: the console drops <run_dir>/control/<id>.json (atomically); rank 0 polls at step boundaries,
# moves each file into control/done/, and every rank acts at the same step (see the all-reduce in the loop).
CONTROL_ACTIONS = ("stop", "checkpoint", "sample", "eval")


def poll_control(run_dir: Path) -> list[dict]:
    directory = run_dir / "control"
    try:
        names = sorted(e.name for e in os.scandir(directory)
                       if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file())
    except FileNotFoundError:
        return []
    requests = []
    for name in names:
        path = directory / name
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(body, dict):
                body = {"id": path.stem, "action": "", "error": f"control file {name} is not a JSON object"}
        except (OSError, ValueError) as e:
            body = {"id": path.stem, "action": "", "error": f"unreadable control file {name}: {e}"}
        body["id"] = str(body.setdefault("id", path.stem))
        action = body.get("action")
        if "error" not in body and action not in CONTROL_ACTIONS:
            body["action"] = str(action or "")
            body["error"] = f"unknown action {action!r} (known: {', '.join(CONTROL_ACTIONS)})"
        elif action == "sample" and "prompt" in body and not isinstance(body["prompt"], str):
            body["error"] = "sample prompt must be a string"
        (directory / "done").mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, directory / "done" / name)
        except FileNotFoundError:  # someone else took it: do not act twice
            continue
        requests.append(body)
    return requests


# Signals: SIGTERM/SIGINT only set a flag; the loop finishes its step, all ranks agree, checkpoint, exit 0.
class StopFlag:
    def __init__(self) -> None:
        self.requested, self.reason = False, ""

    def set(self, reason: str) -> None:
        self.reason = self.reason if self.requested else reason
        self.requested = True


def keep_freed_memory() -> None:
    """glibc serves blocks above 32 MB with a fresh mmap and unmaps them on free, so every CPU step page-faults
    its big tensors afresh (~1 s of a 2.4 s step measured in lib/cpu_memory.py). Keep freed memory instead."""
    import ctypes
    import ctypes.util
    import platform
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        mallopt(-4, 0) and mallopt(-1, 2**31 - 1)  # M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB


def set_parent_death_signal() -> None:
    """Linux: SIGKILL this worker when torchrun dies, so a killed torchrun leaves no orphan training alone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0 and os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # the parent died before prctl took effect


# ================================================================================================= 8. train
class PreparationStopped(Exception):
    """SIGTERM/SIGINT arrived while the data was being prepared (nothing half-written is kept)."""


FLAGS = ("stop", "checkpoint", "sample", "eval")  # what all ranks agree on after every step


def train_step(model, raw_model, optimizer, loader, accum: int, lr: float, grad_clip: float, device, autocast,
               distributed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """accum micro-batches forward/backward, clip, update; (this rank's mean loss, grad norm) with no host sync.
    Under DDP the gradients are all-reduced on the last micro-step only."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=device)
    for micro in range(accum):
        x, y = loader.next_batch()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if distributed:
            model.require_backward_grad_sync = micro == accum - 1
        with autocast():
            _, loss = model(x, y)
        loss = loss / accum
        loss_sum += loss.detach()
        loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    optimizer.step()
    return loss_sum, norm


def agree(loss: torch.Tensor, norm: torch.Tensor, flags: list[bool], world_size: int, distributed: bool):
    """One all-reduce and one host sync a step: mean loss over ranks, the grad norm, each flag OR-ed over ranks."""
    packed = torch.cat([loss.double().view(1), norm.double().view(1),
                        torch.tensor(flags, dtype=torch.float64, device=loss.device)])
    if distributed:
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    values = packed.tolist()
    return values[0] / world_size, values[1] / world_size, [v > 0 for v in values[2:]]


def from_rank0(ctx: DistContext, compute):
    """Rank 0 computes; every rank gets the result, or rank 0's exception so all ranks fail alike."""
    result: list = [None, None]
    if ctx.rank == 0:
        try:
            result[0] = compute()
        except Exception as e:  # noqa: BLE001 - re-raised on every rank
            result[1] = e
    if ctx.is_distributed:
        dist.broadcast_object_list(result, src=0)
    if result[1] is not None:
        raise result[1]
    return result[0]


def train(cfg: TrainingConfig, ctx: DistContext, run_dir: Path, events: Events, stop: StopFlag,
          args: argparse.Namespace, progress: dict) -> int:
    world, master, device = ctx.world_size, ctx.rank == 0, ctx.device
    if device.type == "cpu":
        keep_freed_memory()
    if cfg.optim.total_batch_size % (cfg.optim.micro_batch_size * cfg.model.block_size * world):
        raise UserError(f"optim.total_batch_size = {cfg.optim.total_batch_size} is not a multiple of "
                        f"micro_batch_size × block_size × {world} ranks; change it or the number of ranks.")
    accum = cfg.optim.total_batch_size // (cfg.optim.micro_batch_size * cfg.model.block_size * world)
    if cfg.system.threads:
        torch.set_num_threads(cfg.system.threads)
    dtype, autocast = configure_precision(cfg.system.dtype, cfg.system.tf32, device)
    ckpt_root, cfg_dict, cfg_toml = run_dir / "checkpoints", dataclasses.asdict(cfg), config_to_toml(cfg)

    resume = args.resume or cfg.checkpoint.resume == "auto"
    resume_from = from_rank0(ctx, lambda: checkpoint_to_resume(ckpt_root, resume))
    if master and (kept := save_resolved_config(run_dir, cfg_toml)):
        events.emit("log", level="info", message=f"the run's previous config.toml is kept as {kept}")
    last_report = [0.0]

    def report(source, documents, tokens, elapsed, finished):  # a first-time preparation's progress
        if stop.requested:  # end the preparation (its temp dir is removed) rather than wait hours for it
            raise PreparationStopped()
        if finished or time.monotonic() - last_report[0] >= 5.0:
            last_report[0] = time.monotonic()
            message = (f"preparing {source} shards: {documents:,} documents, {tokens:,} tokens, {elapsed:.0f}s"
                       + (" — done" if finished else ""))
            events.emit("log", level="info", message=message)
            print(message, file=sys.stderr, flush=True)
    if ctx.local_rank == 0:  # one preparer per machine (nodes need not share a filesystem)
        ensure_shards(cfg, report)
    else:  # a file poll, not a collective: preparing a big corpus can outlast any collective timeout
        shard_dir = shard_dir_for(cfg)
        while not (shard_files(shard_dir, "val") and shard_files(shard_dir, "train")):
            if stop.requested:
                raise PreparationStopped()
            time.sleep(0.5)
        ensure_shards(cfg, report)  # the same checks as local rank 0's; returns at once
    enc = get_tokenizer()
    train_loader, val_loader = build_dataloaders(cfg, ctx.rank, world)

    torch.manual_seed(cfg.system.seed)  # identical initial weights on every rank
    raw_model = GPT(cfg.model).to(device)
    optimizer = configure_optimizer(raw_model, cfg, device.type)
    start, tokens, evals_done = 0, 0, False
    if resume_from is not None:
        state = torch.load(resume_from / "checkpoint.pt", map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{resume_from} has checkpoint format {state.get('format')!r}; this trainer reads "
                            f"format {CHECKPOINT_FORMAT}.")
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        train_loader.load_state_dict(state["data"])
        if ctx.rank < len(state["rng"]):
            restore_rng_state(state["rng"][ctx.rank], device)
        start, tokens, evals_done = state["step"], state["tokens"], state.get("evals_done", True)
        del state
    progress["step"] = start
    # Only the training forward is compiled and DDP-wrapped; evaluation and sampling use the raw module.
    model = torch.compile(raw_model) if cfg.system.compile else raw_model
    if ctx.is_distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = ctx.ddp_model = DDP(model, device_ids=[device.index] if device.type in ("cuda", "xpu") else None)
    hellaswag = None
    if cfg.eval.hellaswag_every:
        try:
            hellaswag = load_hellaswag(cfg)
        except Exception as e:  # noqa: BLE001 - missing HellaSwag data must not stop training
            events.emit("log", level="warning", message=f"HellaSwag skipped for this run: {e}")

    name = device_name(device)
    # Rank 0 reports MFU. On a CPU its first run measures the peak (~1 s, then cached): the others wait meanwhile.
    peak = peak_flops(name, device.type, dtype, cfg.system.tf32) if master else None
    barrier(ctx)
    events.emit("run_start", config=cfg_dict, trainer="onefile", params=parameter_count(cfg), world_size=world,
                device=str(device), device_name=name, dtype=str(dtype).removeprefix("torch."),
                grad_accum_steps=accum, max_steps=cfg.schedule.max_steps, start_step=start,
                resumed_from_step=start if resume_from is not None else None, peak_flops=peak)

    def evaluate(done: int, with_hellaswag: bool) -> None:
        loss = evaluate_loss(raw_model, val_loader, cfg.eval.val_steps, device, autocast)
        events.emit("val", step=done, loss=loss)
        if master:
            print(f"step {done:6d} | val loss {loss:.4f}", flush=True)
        if with_hellaswag and hellaswag:
            events.emit("hellaswag", step=done, **run_hellaswag_eval(raw_model, hellaswag, device, autocast,
                                                                     ctx.rank, world))

    def sample(done: int, prompt: str, source: str) -> None:
        if master:  # sampling needs no other rank
            s = cfg.sample
            texts = generate_samples(raw_model, enc, prompt, s.count, s.max_tokens, s.top_k, s.temperature, s.seed,
                                     device, autocast)
            events.emit("sample", step=done, prompt=prompt, texts=texts, source=source)

    def checkpoint(done: int, reason: str) -> None:
        rng = gather_rng_states(device)  # a collective: every rank's generators
        if master:
            payload = {"format": CHECKPOINT_FORMAT, "trainer": "onefile", "step": done, "tokens": tokens,
                       "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                       "data": train_loader.state_dict(), "rng": rng, "world_size": len(rng), "config": cfg_dict,
                       "evals_done": reason != "stop"}  # a stop saves before this step's evaluations ran
            path = save_checkpoint(ckpt_root, done, payload, cfg_toml, cfg.checkpoint.keep_last)
            events.emit("checkpoint", step=done, path=str(path), reason=reason)
        barrier(ctx)

    max_steps = cfg.schedule.max_steps

    def due(every: int, done: int) -> bool:
        return done == max_steps or (every > 0 and done % every == 0)

    fpt = flops_per_token(cfg)
    status, reason = "finished", f"reached max_steps = {max_steps}"
    profiler = None
    if args.profile and master:
        profiler = torch.profiler.profile(
            schedule=torch.profiler.schedule(wait=1, warmup=1, active=3, repeat=1),
            on_trace_ready=torch.profiler.tensorboard_trace_handler(str(run_dir / "profile")), record_shapes=True)
        profiler.start()
    done = start
    while True:
        if done > start or not evals_done:  # a checkpoint may have been saved after this step's evaluations
            if due(cfg.eval.every, done):
                evaluate(done, with_hellaswag=cfg.eval.hellaswag_every > 0 and due(cfg.eval.hellaswag_every, done))
            if due(cfg.sample.every, done):
                sample(done, cfg.sample.prompt, "final" if done == max_steps else "schedule")
        if done > start and due(cfg.checkpoint.every, done):
            checkpoint(done, "final" if done == max_steps else "schedule")
        if done == max_steps:
            break
        if time.time() - events.last_emit >= cfg.system.heartbeat_seconds:
            events.emit("heartbeat", step=done)

        t0 = time.time()
        lr = get_lr(done, cfg)
        loss_t, norm_t = train_step(model, raw_model, optimizer, train_loader, accum, lr, cfg.optim.grad_clip,
                                    device, autocast, ctx.is_distributed)
        requests = poll_control(run_dir) if master else []
        valid = [r for r in requests if "error" not in r]
        if master and not stop.requested and not run_dir.is_dir():
            stop.set("run directory deleted")  # nobody can follow this run any more: save it and end
        wanted = [stop.requested or any(r["action"] == "stop" for r in valid)]
        wanted += [any(r["action"] == flag for r in valid) for flag in FLAGS[1:]]
        loss, norm, agreed = agree(loss_t, norm_t, wanted, world, ctx.is_distributed)
        act = dict(zip(FLAGS, agreed))
        dt = time.time() - t0  # training only: evaluation, samples and checkpoints happen outside t0..dt
        tokens += cfg.optim.total_batch_size
        done += 1
        progress["step"] = done
        if profiler:
            profiler.step()
        if (done - 1) % cfg.system.log_every == 0 or done == max_steps:
            tok_per_s = cfg.optim.total_batch_size / dt
            mfu = fpt * tok_per_s / (peak * world) if peak and tok_per_s > 0 else None
            events.emit("step", step=done - 1, loss=loss, lr=lr, grad_norm=norm, dt=dt, tok_per_s=tok_per_s,
                        tokens=tokens, mfu=mfu)
            if master:
                print(f"step {done - 1:6d} | loss {loss:.4f} | lr {lr:.3e} | norm {norm:.3f} | "
                      f"dt {dt * 1000:.0f}ms | tok/s {tok_per_s:,.0f}", flush=True)

        # Control requests act here, at the step boundary, on every rank at once.
        for r in requests:
            if "error" in r:
                events.emit("control_ack", id=r["id"], action=r["action"], step=done, ok=False, message=r["error"])
        if act["eval"]:
            evaluate(done, with_hellaswag=True)
        for r in (r for r in valid if r["action"] == "sample"):
            sample(done, r.get("prompt") or cfg.sample.prompt, "control")
        if act["checkpoint"] and not act["stop"]:
            checkpoint(done, "control")
        for r in (r for r in valid if r["action"] != "stop"):
            events.emit("control_ack", id=r["id"], action=r["action"], step=done, ok=True, message="done")
        if act["stop"]:
            checkpoint(done, "stop")
            for r in (r for r in valid if r["action"] == "stop"):
                events.emit("control_ack", id=r["id"], action="stop", step=done, ok=True, message="stopped")
            status, reason = "stopped", stop.reason or "stop requested"
            break
    if profiler:
        profiler.stop()
        events.emit("log", level="info", message=f"profiler trace written to {run_dir / 'profile'}")
    events.emit("run_end", status=status, reason=reason, step=done)
    if master:
        print(f"run {status} at step {done}: {reason}", flush=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="onefile_train.py", description="Train a GPT-2 in one file.")
    p.add_argument("--config", required=True, help="TOML config (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a key")
    p.add_argument("--run-dir", help="run directory (default $GPT_CONSOLE_RUN_DIR, else runs/manual-<config stem>)")
    p.add_argument("--events", help="event log (default $GPT_CONSOLE_EVENTS, else <run-dir>/events.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run dir")
    p.add_argument("--profile", action="store_true", help="profile steps 2-4 into <run-dir>/profile/")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = Path(args.run_dir or os.environ.get("GPT_CONSOLE_RUN_DIR") or f"runs/manual-{Path(args.config).stem}")
    run_dir = run_dir.absolute()
    stop = StopFlag()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, frame: stop.set(f"signal {signal.Signals(s).name}"))
    if under_torchrun():
        set_parent_death_signal()
    master = int(os.environ.get("RANK", "0")) == 0
    events = Events(Path(args.events or os.environ.get("GPT_CONSOLE_EVENTS") or run_dir / "events.jsonl"), master)
    ctx, progress, code = None, {"step": 0}, 1
    try:
        cfg = load_config(args.config, args.set)
        ctx = setup_distributed(cfg.system.device)
        code = train(cfg, ctx, run_dir, events, stop, args, progress)
    except PreparationStopped:
        events.emit("run_end", status="stopped", reason=f"{stop.reason} while preparing data", step=0)
        code = 0
    except Exception as e:  # noqa: BLE001 - every failure ends the run with an error + run_end event
        user_error = isinstance(e, (UserError, ConfigError))
        message = str(e) if user_error else f"{type(e).__name__}: {e}"
        events.emit("error", message=message, traceback="" if user_error else traceback.format_exc())
        events.emit("run_end", status="failed", reason=message.splitlines()[0][:300], step=progress["step"])
        if master or not user_error:
            print(message if user_error else traceback.format_exc(), file=sys.stderr, flush=True)
        code = 2 if user_error else 1
    finally:
        events.close()
        if ctx is not None:
            teardown_distributed(ctx)  # after train() returned, so no frame still holds the DDP model
    return code


if __name__ == "__main__":
    sys.exit(main())
