"""Train a GPT-2 in one file, top to bottom: the lesson version of gpt-console's trainer.

    python -m tui_trainer.training.onefile_train --config configs/shakespeare.toml
    torchrun --standalone --nproc_per_node=2 -m tui_trainer.training.onefile_train --config my.toml

The twin of the modular trainer (train.py over lib/): the same config gives the same weights, data
order, losses, learning rates, gradient norms, evaluations, samples, checkpoints (each resumes the
other's) and event lines; tests/training/test_lockstep*.py hold the two to that. The product's
plumbing stays out: data preparation (`gpt-console prepare CONFIG` writes the token shards read
here, as build-nanogpt's fineweb.py does for train_gpt2.py), friendly validation, caches and locks.
Imports: the standard library, torch, numpy, tiktoken. docs/onefile.md walks through the sections:
1 config, 2 model, 3 data, 4 distributed, 5 evaluation, 6 run directory, 7 train(), 8 main().
"""

from __future__ import annotations

import argparse, contextlib, dataclasses, functools, gc, gzip, json, math, os, random, shutil
import errno, signal, sys, time, traceback
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import numpy as np
import tiktoken
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

EOT = 50256  # <|endoftext|>: precedes every document in the shards


class UserError(Exception):
    """Something the user can fix (a config key, missing shards): no traceback."""


# ------------------------------------------------------------------------------------ 1. config
# Why dataclasses: every knob and its default in one place, readable as the run's documentation.
# The defaults are GPT-2 124M on FineWeb-Edu (build-nanogpt's run). The keys are lib/config.py's,
# which adds help texts, bounds and friendly messages; a test keeps the two lists equal.

@dataclass
class ModelConfig:
    n_layer: int = 12             # transformer blocks
    n_head: int = 12              # attention heads (divides n_embd)
    n_embd: int = 768             # width of the residual stream
    block_size: int = 1024        # context length T
    vocab_size: int = 50304       # GPT-2's 50257 tokens padded to a multiple of 128

@dataclass
class DataConfig:
    source: str = "fineweb-edu"   # embedded | shakespeare | fineweb-edu | files
    path: str = ""                # the input for 'files' (or a local Tiny Shakespeare)
    shard_dir: str = ""           # empty: found under <cache_dir>/shards/
    cache_dir: str = "~/.cache/gpt-console"  # downloads and prepared shards
    shard_tokens: int = 100_000_000  # tokens per shard file (preparation)
    val_fraction: float = 0.05    # share of a small corpus held out (preparation)
    max_tokens: int = 0           # stop preparing after this many tokens (0 = all)
    shuffle: bool = True          # seeded window order, new every epoch

@dataclass
class OptimConfig:
    total_batch_size: int = 524_288  # tokens per optimizer step, all ranks and micro-steps
    micro_batch_size: int = 64    # sequences per rank per forward (B)
    max_lr: float = 6e-4          # peak learning rate
    min_lr_ratio: float = 0.1     # final learning rate = max_lr * min_lr_ratio
    weight_decay: float = 0.1     # on 2-D weights only
    beta1: float = 0.9            # AdamW
    beta2: float = 0.95           # AdamW
    eps: float = 1e-8             # AdamW
    grad_clip: float = 1.0        # clip the global gradient norm (0 = never)
    max_bad_steps: int = 5        # NaN/inf steps in a row before the run fails
    spike_window: int = 100       # the lib's loss-spike alerts (this file raises none)
    spike_threshold: float = 6.0  # (the same)
    fused: str = "auto"           # fused AdamW: auto (CUDA and CPU) | on | off

@dataclass
class ScheduleConfig:
    kind: str = "cosine"          # decay after warmup: cosine | linear | constant
    warmup_steps: int = 715       # linear warmup
    max_steps: int = 19073        # optimizer steps (x 2^19 tokens = 10B tokens)

@dataclass
class EvalConfig:
    every: int = 250              # validation loss every N steps (and at the end)
    val_steps: int = 20           # micro-batches per rank for one validation loss
    hellaswag_every: int = 250    # HellaSwag every N steps (0 = never)
    hellaswag_examples: int = 0   # examples spread over the file (0 = all 10,042)
    hellaswag_path: str = ""      # empty: <cache_dir>/hellaswag/hellaswag_val.jsonl

@dataclass
class SampleConfig:
    every: int = 250              # samples every N steps (and at the end)
    prompt: str = "Hello, I'm a language model,"  # what the samples continue
    count: int = 4                # samples per round
    max_tokens: int = 32          # new tokens per sample
    top_k: int = 50               # sample among the k likeliest tokens
    temperature: float = 1.0      # below 1: more conservative
    seed: int = 42                # a private generator: the same step gives the same text

@dataclass
class CheckpointConfig:
    every: int = 5000             # every N steps (and at the end, and when stopped)
    keep_last: int = 3            # older checkpoints are deleted
    resume: str = "never"         # auto: continue from the run directory's newest

@dataclass
class SystemConfig:
    device: str = "auto"          # auto | cpu | cuda | cuda:N | mps | xpu
    dtype: str = "auto"           # autocast: auto (bf16 where native) | float32 | bfloat16
    compile: bool = False         # torch.compile the training forward
    tf32: bool = True             # TF32 matmuls on CUDA
    seed: int = 1337              # weights and data order
    threads: int = 0              # torch.set_num_threads (0 = OMP_NUM_THREADS)
    log_every: int = 1            # a step event every N steps
    heartbeat_seconds: float = 10.0  # tells the console a slow run from a dead one
    metrics_seconds: float = 10.0  # the lib's system-metrics events (this file emits none)

@dataclass
class LogConfig:
    tensorboard: bool = False     # the lib's live TensorBoard mirror (this file writes none)

def launcher_section(name: str, **defaults):
    """[launch] and [slurm] are read by the console's launcher (docs/configuration.md), not here:
    their keys are accepted and kept in the checkpoints, nothing more."""
    fields = [(k, type(v), field(default_factory=lambda v=v: type(v)(v)))  # a fresh {} each
              for k, v in defaults.items()]
    return dataclasses.make_dataclass(name, fields)

LaunchConfig = launcher_section("LaunchConfig", backend="local", trainer="train", nproc_per_node=1,
                                nnodes=1, rdzv_endpoint="", rdzv_id="", omp_num_threads=0, env={})
SlurmConfig = launcher_section("SlurmConfig", partition="", account="", time_limit="",
                               gpus_per_node=0, cpus_per_task=0, stop_signal_seconds=120,
                               rdzv_port=29500, sbatch={}, setup="", python="")

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
    log: LogConfig = field(default_factory=LogConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

def load_config(path: str | None, overrides: list[str] = ()) -> TrainingConfig:
    """Defaults <- the TOML file <- each --set section.key=value (a TOML value or a bare word)."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8")) if path else {}
    for text in overrides:
        key, _, raw = text.partition("=")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # --set data.source=shakespeare
        *tables, name = key.strip().split(".")  # launch.env.NAME=value sets one variable
        target = data
        for table in tables:
            target = target.setdefault(table, {})
        target[name] = value
    cfg = TrainingConfig()
    for section, table in data.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise UserError(f"unknown config section [{section}] (or not a table)")
        values = getattr(cfg, section)
        for key, value in table.items():
            if key not in {f.name for f in dataclasses.fields(values)}:
                raise UserError(f"unknown config key {section}.{key}")
            default = getattr(values, key)
            value = float(value) if type(default) is float and type(value) is int else value
            if type(value) is not type(default):
                raise UserError(f"{section}.{key} = {value!r}: expected {type(default).__name__}")
            setattr(values, key, value)
    return cfg

SECTIONS = [f.name for f in dataclasses.fields(TrainingConfig)]

def config_to_toml(cfg: TrainingConfig) -> str:
    """The resolved config as TOML, kept beside the run and in every checkpoint."""
    def value(v) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }" if v else "{}"
        return str(v).lower() if isinstance(v, bool) else json.dumps(v)  # JSON strings are TOML's
    return "".join(f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items()) + "\n"
                   for name, table in dataclasses.asdict(cfg).items())


# ------------------------------------------------------------------------------------- 2. model
# Why this shape: GPT-2 exactly (learned positions, pre-LayerNorm blocks, tanh GELU, tied embedding
# and head), with Hugging Face's parameter names so a checkpoint loads into GPT2LMHeadModel. The
# weights come from torch's global generator in module order: the same seed gives lib/model.py's
# model bit for bit. Two CPU speed-ups (measured in lib/attention.py, lib/fused_head.py); GPUs use
# neither.

def causal_attention(q, k, v):
    """softmax(q k^T / sqrt(d) + causal mask) v. On a CPU, while the B*H*T*T scores stay small
    (64 Mi), plain matmuls in cache beat the flash kernel's small blocks."""
    B, H, T, d = q.shape
    if q.device.type != "cpu" or B * H * T * T > 64 * 2**20:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    scores = (q * d ** -0.5) @ k.transpose(-2, -1)  # scaling q: T*d values rather than T*T
    future = torch.full((T, T), float("-inf"), dtype=scores.dtype, device=q.device).triu(1)
    return torch.softmax(scores + future, dim=-1) @ v

class ChunkedHeadLoss(torch.autograd.Function):
    """Mean cross-entropy of hidden @ W^T without the (B*T, 50304) fp32 logits: a CPU spends more
    time moving those than multiplying. Rows go 256 at a time (their logits fit in cache), and the
    loss ends the graph, so the logits' gradient, softmax - onehot, is known in the forward: it is
    kept in the matmul dtype and the backward is two matmuls."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, dtype, want_grad):
        x, w, n = hidden.to(dtype), weight.to(dtype), hidden.shape[0]
        losses = torch.empty(n, dtype=torch.float32)
        grad = torch.empty(n, w.shape[0], dtype=dtype) if want_grad else None
        block = max(1, 2**20 // w.shape[0])  # the softmax reads 4 MB of fp32 logits at a time
        chunk = torch.empty(min(256, n), w.shape[0], dtype=dtype)  # reused by every chunk
        for start in range(0, n, 256):
            logits = torch.mm(x[start:start + 256], w.t(), out=chunk[:min(256, n - start)])
            for first in range(0, logits.shape[0], block):
                part = logits[first:first + block].float()
                rows = slice(start + first, start + first + part.shape[0])
                ids, y = torch.arange(part.shape[0]), targets[rows]
                probs = torch.softmax(part, dim=-1)
                # log-sum-exp from the softmax: the top probability sits at the top logit
                losses[rows].copy_(part.amax(dim=-1) - probs.amax(dim=-1).log() - part[ids, y])
                if want_grad:
                    grad[rows].copy_(probs)
                    grad[rows][ids, y] = (probs[ids, y] - 1.0).to(dtype)  # rounded once
        if want_grad:
            ctx.save_for_backward(x, w, grad)
            ctx.dtypes = hidden.dtype, weight.dtype
        return losses.mean()

    @staticmethod
    def backward(ctx, grad_loss):
        x, w, grad = ctx.saved_tensors
        scale = grad_loss.float() / x.shape[0]  # applied on the small sides of the matmuls
        grad_hidden = ((grad @ w).float() * scale).to(ctx.dtypes[0])
        grad_weight = (grad.t() @ (x.float() * scale).to(x.dtype)).to(ctx.dtypes[1])
        return grad_hidden, grad_weight, None, None, None

@torch.compiler.disable  # compiled, the chunk loop became slow kernels
def chunked_head_loss(hidden, weight, targets):
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden.dtype
    want_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    with torch.autocast("cpu", enabled=False):  # the dtype is chosen above
        return ChunkedHeadLoss.apply(hidden.reshape(-1, hidden.shape[-1]), weight,
                                     targets.reshape(-1), dtype, want_grad)

def lm_loss(hidden, weight, targets):
    """Mean next-token cross-entropy, in fp32 whatever autocast does to the matmuls."""
    if hidden.device.type == "cpu":
        return chunked_head_loss(hidden, weight, targets)
    logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))

class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v of all heads at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.c_proj.is_residual_projection = True

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, dim=2))  # (B, heads, T, head size)
        y = causal_attention(q, k, v)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.c_proj.is_residual_projection = True

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))

class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg.n_embd), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg.n_embd), MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=nn.LayerNorm(cfg.n_embd)))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # one matrix reads and writes tokens
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            # each block adds two projections to the residual stream: keep its variance steady
            residual = getattr(module, "is_residual_projection", False)
            std = 0.02 * (2 * self.config.n_layer) ** -0.5 if residual else 0.02
            torch.nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def hidden_states(self, idx):
        pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx, targets=None):
        """(logits, None) without targets; (None, loss) with them: training skips the logits."""
        x = self.hidden_states(idx)
        if targets is None:
            return self.lm_head(x), None
        return None, lm_loss(x, self.lm_head.weight, targets)


# -------------------------------------------------------------------------------------- 3. data
# Why shards: tokenising happens once, before training (`gpt-console prepare CONFIG`), into uint16
# .npy files, *_val_000000.npy and *_train_NNNNNN.npy listed in manifest.json; here they are only
# memory-mapped. A window is B*T+1 consecutive tokens of one shard starting at a multiple of B*T.
# Windows have one global index: epoch e holds [e*N, (e+1)*N), shard after shard, each shard's
# windows in order or, with data.shuffle, in seeded permutations that change every epoch. Rank r
# reads window position + r and every rank advances position by the world size: 2 ranks read the
# windows of 1 rank's 2 micro-steps, and one saved position resumes every rank.

def find_shards(cfg: TrainingConfig, split: str) -> list[Path]:
    """data.shard_dir's shards, else the newest complete preparation's with these settings."""
    d = cfg.data
    found = [(math.inf, Path(os.path.expanduser(d.shard_dir)))] if d.shard_dir else []
    wanted = dict(source=d.source, val_fraction=d.val_fraction, shard_tokens=d.shard_tokens,
                  max_tokens=d.max_tokens)
    for manifest in (Path(os.path.expanduser(d.cache_dir)) / "shards").glob("*/manifest.json"):
        info = json.loads(manifest.read_text(encoding="utf-8"))
        recipe = info.get("recipe") or {}
        same = recipe.get("input", {}).get("path", d.path) == d.path and info.get("complete")
        if not d.shard_dir and same and all(recipe.get(k) == v for k, v in wanted.items()):
            found.append((manifest.stat().st_mtime, manifest.parent))
    if not found:
        return []
    shard_dir = max(found)[1]
    if not (shard_dir / "manifest.json").is_file():  # build-nanogpt's shards have no manifest
        return sorted(shard_dir.glob(f"*_{split}_*.npy"))
    shards = json.loads((shard_dir / "manifest.json").read_text(encoding="utf-8"))["shards"]
    return [shard_dir / s["file"] for s in shards if s["split"] == split]

class ShardLoader:
    def __init__(self, files, B, T, rank, world_size, shuffle, seed):
        self.files, self.B, self.T, self.rank, self.world_size = files, B, T, rank, world_size
        self.shuffle, self.seed, self.window = shuffle, seed, B * T
        self.shard_tokens = [len(np.load(f, mmap_mode="r")) for f in files]
        self.shard_windows = [max(0, (n - 1) // self.window) for n in self.shard_tokens]
        self.windows_per_epoch = sum(self.shard_windows)
        if self.windows_per_epoch == 0:
            raise UserError(f"no shard holds B*T+1 = {self.window + 1} tokens: lower "
                            "optim.micro_batch_size or model.block_size")
        self.position = 0  # the global index of the window rank 0 reads next

    def next_batch(self):
        shard, start = self.locate(self.position + self.rank)
        self.position += self.world_size
        tokens = np.load(self.files[shard], mmap_mode="r")[start:start + self.window + 1]
        buf = torch.from_numpy(tokens.astype(np.int64))
        return buf[:-1].view(self.B, self.T), buf[1:].view(self.B, self.T)  # inputs, next tokens

    @functools.lru_cache(maxsize=4)
    def epoch_layout(self, epoch):
        """The epoch's shard order (no shard too short for a window) and each one's first window."""
        order = range(len(self.files))
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch, 0]).permutation(len(order)).tolist()
        order = [i for i in order if self.shard_windows[i] > 0]
        return order, np.cumsum([0] + [self.shard_windows[i] for i in order[:-1]]).tolist()

    @functools.lru_cache(maxsize=4)
    def window_order(self, epoch, shard):
        rng = np.random.default_rng([self.seed, epoch, 1, shard])
        return rng.permutation(self.shard_windows[shard])

    def locate(self, window):
        """global window index -> (shard, offset of the window's first token)"""
        epoch, k = divmod(window, self.windows_per_epoch)
        order, starts = self.epoch_layout(epoch)
        slot = int(np.searchsorted(starts, k, side="right")) - 1
        shard, j = order[slot], k - starts[slot]
        return shard, (int(self.window_order(epoch, shard)[j]) if self.shuffle else j) * self.window

    def state_dict(self):
        return {"position": self.position, "windows_per_epoch": self.windows_per_epoch,
                "tokens_per_window": self.window, "shuffle": self.shuffle, "seed": self.seed,
                "shards": [[f.name, n] for f, n in zip(self.files, self.shard_tokens)]}

    def load_state_dict(self, state):
        if state["shards"] != self.state_dict()["shards"]:
            raise UserError("the checkpoint was trained on other shards: resume with its settings")
        # a changed micro-batch size continues at the same fraction of the same epoch
        epoch, k = divmod(state["position"], state["windows_per_epoch"])
        self.position = epoch * self.windows_per_epoch + k * self.windows_per_epoch // \
            state["windows_per_epoch"]


# ------------------------------------------------------------------------------- 4. distributed
# Why: under torchrun (RANK, LOCAL_RANK, WORLD_SIZE set) every rank trains a copy of the model on
# its own windows and DDP averages the gradients; alone, one process does it all. Rank 0 writes
# events and checkpoints. Weights, gradients and AdamW state stay fp32; autocast runs the matmuls
# in bf16 where the hardware multiplies bf16 natively (recent GPUs, CPUs with AVX512-BF16 or AMX).

@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    ddp: bool = False

def setup_distributed(setting: str) -> DistContext:
    ddp = all(v in os.environ for v in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    local_rank, kind = int(os.environ.get("LOCAL_RANK", 0)), setting.split(":")[0]
    if setting == "auto":
        accelerator = torch.accelerator.current_accelerator()
        kind = accelerator.type if torch.accelerator.is_available() else "cpu"
    if kind in ("cpu", "mps"):
        device = torch.device(kind)
    else:  # one accelerator per local rank
        device = torch.device(kind, local_rank if ddp else int((setting + ":0").split(":")[1]))
    if not ddp:
        return DistContext(device=device)
    if device.type != "cpu":
        torch.accelerator.set_device_index(device.index)
    dist.init_process_group(backend=dist.get_default_backend_for_device(device))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return DistContext(rank, local_rank, world_size, device, True)

def configure_precision(cfg: TrainingConfig, device: torch.device):
    """(dtype, autocast): bf16 where it is native, else fp32 (and autocast does nothing)."""
    native = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
            native = bool({"amx_bf16", "avx512_bf16"} & set(flags))
    auto = torch.bfloat16 if native else torch.float32
    dtype = auto if cfg.system.dtype == "auto" else getattr(torch, cfg.system.dtype)
    if device.type == "cuda" and cfg.system.tf32:
        torch.set_float32_matmul_precision("high")  # fp32 matmuls on TF32 tensor cores
    if dtype == torch.float32:
        return dtype, contextlib.nullcontext
    return dtype, functools.partial(torch.autocast, device_type=device.type, dtype=dtype)

def configure_optimizer(model: nn.Module, cfg: TrainingConfig, device_type: str):
    """AdamW; weight decay on matmul weights and embeddings, none on biases and LayerNorms."""
    params = list(model.parameters())  # the tied head/embedding matrix appears once
    decay = cfg.optim.weight_decay
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # fused: one pass over weights, gradients and moments instead of several (CPU: 14 vs 50 ms)
    fused = cfg.optim.fused == "on" or cfg.optim.fused == "auto" and device_type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.optim.max_lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                             eps=cfg.optim.eps, fused=fused)

def get_lr(step: int, cfg: TrainingConfig) -> float:
    """Linear warmup to max_lr, then cosine (or linear) decay to max_lr * min_lr_ratio."""
    max_lr, warmup, max_steps = cfg.optim.max_lr, cfg.schedule.warmup_steps, cfg.schedule.max_steps
    min_lr = max_lr * cfg.optim.min_lr_ratio
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if cfg.schedule.kind == "constant":
        return max_lr
    if step >= max_steps:
        return min_lr
    progress = (step - warmup) / max(1, max_steps - warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    decay = 1 - progress if cfg.schedule.kind == "linear" else cosine
    return min_lr + decay * (max_lr - min_lr)


# -------------------------------------------------------------------------------- 5. evaluation
# Why: the training loss cannot tell learning from memorising. Validation loss reads the same
# held-out windows every time; HellaSwag asks which of four endings the model finds least surprising
# (acc_norm: the lowest mean loss per ending token, build-nanogpt's number); samples show it
# learning to write.
# All of it runs on the raw module (not DDP, not compiled), in eval mode, without gradients.

@contextlib.contextmanager
def evaluating(model):
    model.eval()
    with torch.no_grad():
        yield
    model.train()

def all_reduce_sum(t):
    if dist.is_initialized():
        dist.all_reduce(t)  # a sum: gloo has no average
    return t

def evaluate_loss(model, val_loader, steps: int, device, autocast) -> float:
    val_loader.position, total = 0, torch.zeros((), device=device)
    with evaluating(model):
        for _ in range(steps):
            x, y = val_loader.next_batch()
            with autocast():
                _, loss = model(x.to(device), y.to(device))
            total += loss.detach().float()
    total /= steps
    return all_reduce_sum(total).item() / (dist.get_world_size() if dist.is_initialized() else 1)

def load_hellaswag(cfg: TrainingConfig) -> list[dict]:
    """eval.hellaswag_examples examples spread evenly over the file (0 = all)."""
    path = Path(os.path.expanduser(cfg.eval.hellaswag_path
                                   or f"{cfg.data.cache_dir}/hellaswag/hellaswag_val.jsonl"))
    if not path.is_file():
        raise UserError(f"no file {path}: run  gpt-console prepare CONFIG --hellaswag")
    with open(path, "rb") as f:
        opener = gzip.open if f.read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8") as f:
        examples = [json.loads(line) for line in f if line.strip()]
    n, count = len(examples), cfg.eval.hellaswag_examples
    return examples if not 0 < count < n else [examples[i * n // count] for i in range(count)]

def hellaswag_counts(model, examples, enc, device, autocast, ctx: DistContext) -> dict:
    """Each rank scores every world_size-th example, in batches of similar rows; counts summed."""
    T, rendered = model.config.block_size, []
    for ex in examples[ctx.rank::ctx.world_size]:  # 4 rows: context + " " + ending, last T tokens
        # encode_ordinary: an "<|endoftext|>" in the text is text, never the special token.
        context = enc.encode_ordinary(ex["ctx"])
        ends = [enc.encode_ordinary(" " + e) for e in ex["endings"]]
        masks = [([0] * len(context) + [1] * len(e))[-T:] for e in ends]  # 1: an ending token
        rendered.append(([(context + e)[-T:] for e in ends], masks, int(ex["label"])))
    batches, longest = [[]], 0  # consecutive examples, 4 rows x the longest row <= 4096 tokens
    for item in rendered:
        width = max(len(r) for r in item[0])
        if batches[-1] and 4 * (len(batches[-1]) + 1) * max(longest, width) > 4096:
            batches, longest = batches + [[]], 0
        batches[-1], longest = batches[-1] + [item], max(longest, width)
    counts = torch.zeros(3, dtype=torch.long, device=device)  # correct, correct_norm, total
    with evaluating(model):
        for batch in (b for b in batches if b):
            counts += score_batch(model, batch, device, autocast)
    correct, correct_norm, total = all_reduce_sum(counts).tolist()
    return {"correct": correct, "correct_norm": correct_norm, "total": total,
            "acc": correct / max(total, 1), "acc_norm": correct_norm / max(total, 1)}

def score_batch(model, batch, device, autocast):
    rows = [row for rows, _, _ in batch for row in rows]
    tokens = torch.zeros((len(rows), max(len(r) for r in rows)), dtype=torch.long)  # right-padded
    mask = torch.zeros(tokens.shape, dtype=torch.bool)
    for r, (row, m) in enumerate(zip(rows, [m for _, masks, _ in batch for m in masks])):
        tokens[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), torch.tensor(m).bool()
    # token i is predicted at position i-1: only those positions go through the 50304-wide head
    at_row, at_pos = mask[:, 1:].nonzero(as_tuple=True)
    lengths = torch.bincount(at_row, minlength=len(rows)).clamp(min=1).to(device)
    with autocast():
        hidden = model.hidden_states(tokens.to(device))
        logits = model.lm_head(hidden[at_row.to(device), at_pos.to(device)])
    targets = tokens[at_row, at_pos + 1].to(device)
    losses = F.cross_entropy(logits.float(), targets, reduction="none")
    total = torch.zeros(len(rows), device=device).index_add_(0, at_row.to(device), losses)
    labels = torch.tensor([label for _, _, label in batch], device=device)
    return torch.stack([(total.view(-1, 4).argmin(1) == labels).sum(),  # acc: lowest total loss
                        ((total / lengths).view(-1, 4).argmin(1) == labels).sum(),  # acc_norm: mean
                        torch.tensor(len(batch), device=device)])

def generate_samples(model, enc, prompt: str, s: SampleConfig, device, autocast) -> list[str]:
    """s.count top-k continuations of the prompt, from a private generator seeded with s.seed."""
    start = enc.encode_ordinary(prompt) if prompt else [EOT]
    idx = torch.tensor(start, dtype=torch.long).unsqueeze(0).repeat(s.count, 1).to(device)
    generator = torch.Generator(device=device).manual_seed(s.seed)
    with evaluating(model):
        for _ in range(s.max_tokens):
            with autocast():
                hidden = model.hidden_states(idx[:, -model.config.block_size:])
                logits = model.lm_head(hidden[:, -1])
            logits = logits[:, :enc.n_vocab].float() / s.temperature  # never a padding token
            top_logits, top_ids = torch.topk(logits, min(s.top_k, enc.n_vocab), dim=-1)
            choice = torch.multinomial(F.softmax(top_logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, torch.gather(top_ids, -1, choice)], dim=1)
    return [enc.decode(row[len(start):]) for row in idx.tolist()]


# ---------------------------------------------------------------------------- 6. run directory
# Why: the console follows a run through its directory. events.jsonl gets one JSON object a line,
# {"v", "seq", "t", "type", ...} (docs/events.md), from rank 0. checkpoints/step-NNNNNNNN/ holds
# checkpoint.pt (one plain dict, the keys lib/checkpoint.py writes), config.toml and meta.json,
# written last: without it a checkpoint is incomplete. The console asks for things by dropping
# control/<id>.json files, which rank 0 picks up between steps.

class Events:
    def __init__(self, path: Path, enabled: bool):
        self.file, self.seq, self.last = None, 0, time.time()
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            old = path.read_bytes() if path.exists() else b""  # a resumed run continues its seq
            for line in reversed(old.splitlines()):
                with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
                    self.seq = json.loads(line)["seq"] + 1
                    break
            self.file = open(path, "a", encoding="utf-8")
            self.file.write("\n" if old and not old.endswith(b"\n") else "")  # a torn last line

    def emit(self, type: str, **payload) -> None:
        self.last = time.time()
        if self.file:
            line = json.dumps({"v": 1, "seq": self.seq, "t": self.last, "type": type, **payload},
                              ensure_ascii=False, default=str)
            self.seq += 1
            with contextlib.suppress(OSError):  # a full disk must not stop training
                self.file.write(line + "\n")
                self.file.flush()

def complete_checkpoints(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("step-*/meta.json")
                  if (p.parent / "checkpoint.pt").is_file())

def rng_states(device) -> list[dict]:
    """Every rank's generator states, gathered on all ranks."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    mine = {"python": random.getstate(),
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    states = [mine] * (dist.get_world_size() if dist.is_initialized() else 1)
    if dist.is_initialized():
        dist.all_gather_object(states, mine)
    return states

def restore_rng(state: dict, device) -> None:
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)

def save_checkpoint(root: Path, payload: dict, config_toml: str, keep_last: int) -> Path:
    final = root / f"step-{payload['step']:08d}"
    if (final / "meta.json").is_file():
        return final  # a stop right after a scheduled save: the same state
    tmp = root / f".tmp-{final.name}-{os.getpid()}"  # renamed into place once whole
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(payload, tmp / "checkpoint.pt")
    (tmp / "config.toml").write_text(config_toml, encoding="utf-8")
    meta = {"format": 1, "step": payload["step"], "tokens": payload["tokens"], "time": time.time()}
    (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover of the same step
    os.replace(tmp, final)
    for old in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old)
    return final

def poll_control(run_dir: Path) -> list[dict]:
    """The console's requests, oldest first, each moved to control/done/ (bad ones get an error)."""
    requests = []
    for path in sorted((run_dir / "control").glob("[!.]*.json")):
        try:
            request = {"id": path.stem} | json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, RecursionError):  # hostile files too
            request = {"id": path.stem}
        if request.get("action") not in ACTIONS or not isinstance(request.get("prompt", ""), str):
            request["error"] = f"not a request (known actions: {', '.join(ACTIONS)})"
        request["id"], request["action"] = str(request["id"]), str(request.get("action") or "")
        (path.parent / "done").mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # gone: someone else took it
            os.replace(path, path.parent / "done" / path.name)
            requests.append(request)
    return requests

ACTIONS = ("stop", "checkpoint", "sample", "eval")  # what all ranks agree on after a step


# ------------------------------------------------------------------------------------- 7. train
# Why this order: each step ends with one all-reduce in which the ranks agree on the loss, the
# gradient norm and what happens next (a SIGTERM or a console request seen by any rank), so they
# always run the same collectives. Evaluations and checkpoints happen between steps, untimed.

@dataclass
class Run:
    """What the loop and its once-in-a-while blocks work on."""
    cfg: TrainingConfig
    ctx: DistContext
    events: Events
    run_dir: Path
    model: nn.Module  # the raw GPT: evaluation, samples, checkpoints
    optimizer: torch.optim.Optimizer
    train_loader: ShardLoader
    val_loader: ShardLoader
    autocast: object
    hellaswag: list | None
    enc: object = field(default_factory=lambda: tiktoken.get_encoding("gpt2"))
    tokens: int = 0  # trained so far, all ranks

def evaluate(run: Run, step: int, hellaswag: bool) -> None:
    loss = evaluate_loss(run.model, run.val_loader, run.cfg.eval.val_steps, run.ctx.device,
                         run.autocast)
    run.events.emit("val", step=step, loss=loss)
    if run.ctx.rank == 0:
        print(f"step {step:6d} | val loss {loss:.4f}", flush=True)
    if hellaswag and run.hellaswag:
        counts = hellaswag_counts(run.model, run.hellaswag, run.enc, run.ctx.device, run.autocast,
                                  run.ctx)
        run.events.emit("hellaswag", step=step, **counts)

def sample(run: Run, step: int, prompt: str, source: str) -> None:
    if run.ctx.rank == 0:  # needs no other rank
        texts = generate_samples(run.model, run.enc, prompt, run.cfg.sample, run.ctx.device,
                                 run.autocast)
        run.events.emit("sample", step=step, prompt=prompt, texts=texts, source=source)

def checkpoint(run: Run, step: int, reason: str) -> None:
    rng = rng_states(run.ctx.device)  # a collective
    if run.ctx.rank == 0:
        payload = {"format": 1, "trainer": "onefile", "step": step, "tokens": run.tokens,
                   "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                   "data": run.train_loader.state_dict(), "rng": rng, "world_size": len(rng),
                   "config": dataclasses.asdict(run.cfg),
                   "evals_done": reason != "stop"}  # a stop saves before the step's evaluations
        path = save_checkpoint(run.run_dir / "checkpoints", payload, config_to_toml(run.cfg),
                               run.cfg.checkpoint.keep_last)
        run.events.emit("checkpoint", step=step, path=str(path), reason=reason)
    if run.ctx.ddp:
        dist.barrier()

def train_step(model, run: Run, accum: int, lr: float):
    """accum micro-batches forward and backward, clip, update: (mean loss, norm), on the device."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=run.ctx.device)
    for micro in range(accum):
        x, y = (t.to(run.ctx.device) for t in run.train_loader.next_batch())
        if run.ctx.ddp:  # average the gradients over ranks once, after the last micro-batch
            model.require_backward_grad_sync = micro == accum - 1
        with run.autocast():
            _, loss = model(x, y)
        loss = loss / accum  # the gradient of the mean over all micro-batches
        loss_sum += loss.detach()
        loss.backward()
    clip = run.cfg.optim.grad_clip if run.cfg.optim.grad_clip > 0 else math.inf
    norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
    finite = (torch.isfinite(loss_sum) & torch.isfinite(norm)).float().view(1)
    if run.ctx.ddp:  # a NaN/inf loss on any rank: no rank updates (the loop counts these steps)
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item():
        run.optimizer.step()
    return loss_sum, norm

def agree(run: Run, loss, norm, flags: list[bool]):
    """One all-reduce, one host sync: the mean loss, the norm, each flag OR-ed over ranks."""
    packed = torch.cat([loss.double().view(1), norm.double().view(1),
                        torch.tensor(flags, dtype=torch.float64, device=loss.device)])
    if run.ctx.ddp:
        dist.all_reduce(packed)
    values, world = packed.tolist(), run.ctx.world_size
    flags = ACTIONS + ("vanished",)
    return values[0] / world, values[1] / world, dict(zip(flags, [v > 0 for v in values[2:]]))

def train(cfg: TrainingConfig, ctx: DistContext, run: Run, start: int, evals_done: bool,
          state: dict) -> tuple[str, str, int]:
    """The loop; returns how the run ended: (status, reason, steps done)."""
    model = nn.parallel.DistributedDataParallel(run.model) if ctx.ddp else run.model
    model = torch.compile(model) if cfg.system.compile else model  # over DDP, as the lib does
    accum = cfg.optim.total_batch_size // (cfg.optim.micro_batch_size * cfg.model.block_size
                                           * ctx.world_size)
    step, max_steps, events, bad_steps = start, cfg.schedule.max_steps, run.events, 0

    def due(every: int) -> bool:
        return step == max_steps or (every > 0 and step % every == 0)

    while True:
        # once in a while: evaluate, sample, checkpoint (a resumed step's evaluations ran already)
        if step > start or not evals_done:
            if due(cfg.eval.every):
                evaluate(run, step, cfg.eval.hellaswag_every > 0 and due(cfg.eval.hellaswag_every))
            if due(cfg.sample.every):
                sample(run, step, cfg.sample.prompt, "final" if step == max_steps else "schedule")
        if step > start and due(cfg.checkpoint.every):
            checkpoint(run, step, "final" if step == max_steps else "schedule")
        if step == max_steps:
            return "finished", f"reached max_steps = {max_steps}", step
        if time.time() - events.last >= cfg.system.heartbeat_seconds:
            events.emit("heartbeat", step=step)

        # one optimizer step, then all ranks agree on the numbers and on what to do next
        t0, lr = time.time(), get_lr(step, cfg)
        loss, norm = train_step(model, run, accum, lr)
        requests = poll_control(run.run_dir) if ctx.rank == 0 else []
        asked = [r["action"] for r in requests if "error" not in r]
        vanished = ctx.rank == 0 and not run.run_dir.is_dir()  # deleted: stop, write nothing back
        state["stop"] = state["stop"] or ("run directory deleted" if vanished else None)
        loss, norm, act = agree(run, loss, norm, [state["stop"] is not None or "stop" in asked]
                                + [a in asked for a in ACTIONS[1:]] + [vanished])
        dt = time.time() - t0
        step = state["step"] = step + 1
        run.tokens += cfg.optim.total_batch_size
        if (step - 1) % cfg.system.log_every == 0 or step == max_steps:
            tok_per_s = cfg.optim.total_batch_size / dt
            events.emit("step", step=step - 1, loss=loss, lr=lr, grad_norm=norm, dt=dt,
                        tok_per_s=tok_per_s, tokens=run.tokens, mfu=None)
            if ctx.rank == 0:
                print(f"step {step - 1:6d} | loss {loss:.4f} | lr {lr:.3e} | norm {norm:.3f} | "
                      f"dt {dt * 1000:.0f}ms | tok/s {tok_per_s:,.0f}", flush=True)

        # a diverging run: NaN/inf steps were not applied; too many in a row end it
        bad_steps = 0 if math.isfinite(loss) and math.isfinite(norm) else bad_steps + 1
        if bad_steps:
            finite = (lambda x: x if math.isfinite(x) else None)
            events.emit("alert", step=step - 1, kind="nonfinite", loss=finite(loss),
                        grad_norm=finite(norm), bad_steps=bad_steps, message=f"step {step - 1}: "
                        f"loss {loss}, gradient norm {norm}: update skipped")
        if bad_steps >= cfg.optim.max_bad_steps:  # the skipped updates left the weights finite
            checkpoint(run, step, "stop")
            return "failed", f"diverged: {bad_steps} non-finite steps in a row; lower the lr", step

        # once in a while: the console asked for something (or a signal came); all ranks act
        if handle_requests(run, step, requests, act):
            return "stopped", state["stop"] or "stop requested", step

def handle_requests(run: Run, step: int, requests: list[dict], act: dict) -> bool:
    """Act on the agreed flags and answer each request with a control_ack. True: stop now."""
    def ack(r, ok, message):
        run.events.emit("control_ack", id=r["id"], action=r["action"], step=step, ok=ok,
                        message=message)
    for r in (r for r in requests if "error" in r):
        ack(r, False, r["error"])
    valid = [r for r in requests if "error" not in r]
    if act["eval"]:
        evaluate(run, step, hellaswag=True)
    for r in (r for r in valid if r["action"] == "sample"):
        sample(run, step, r.get("prompt") or run.cfg.sample.prompt, "control")
    if act["checkpoint"] and not act["stop"]:
        checkpoint(run, step, "control")
    for r in (r for r in valid if r["action"] != "stop"):
        ack(r, True, "done")
    if act["stop"] and not act["vanished"]:
        checkpoint(run, step, "stop")
        for r in (r for r in valid if r["action"] == "stop"):
            ack(r, True, "stopped")
    return act["stop"]


# -------------------------------------------------------------------------------------- 8. main
# Why: set-up in training order (config, ranks, data, model, a checkpoint to resume), then one place
# that turns every failure into an error event and a run_end, so the console never waits on a dead
# run. SIGTERM/SIGINT only set a flag: the loop finishes its step, checkpoints and exits 0.

def setup(cfg: TrainingConfig, ctx: DistContext, run_dir: Path, events: Events, args, state):
    """Everything the loop needs; the run_start event."""
    per_step = cfg.optim.micro_batch_size * cfg.model.block_size * ctx.world_size
    if cfg.optim.total_batch_size % per_step:
        raise UserError(f"optim.total_batch_size is not a multiple of {per_step} (B x T x ranks)")
    torch.set_num_threads(cfg.system.threads or torch.get_num_threads())
    dtype, autocast = configure_precision(cfg, ctx.device)
    checkpoints = complete_checkpoints(run_dir / "checkpoints")
    resume = args.resume or cfg.checkpoint.resume == "auto"
    if checkpoints and not resume:
        raise UserError(f"{run_dir} holds checkpoints: pass --resume, or use another --run-dir")
    if ctx.rank == 0 and not (run_dir / "config.toml").exists():
        (run_dir / "config.toml").write_text(config_to_toml(cfg), encoding="utf-8")
    train_files, val_files = find_shards(cfg, "train"), find_shards(cfg, "val")
    if not train_files or not val_files:
        command = " ".join(["gpt-console prepare", args.config] + [f"--set {s}" for s in args.set])
        raise UserError(f"no prepared '{cfg.data.source}' token shards for this config: prepare "
                        f"them with\n    {command}\nand start again.")
    B, T, seed = cfg.optim.micro_batch_size, cfg.model.block_size, cfg.system.seed
    loaders = [ShardLoader(files, B, T, ctx.rank, ctx.world_size, shuffle, seed)
               for files, shuffle in ((train_files, cfg.data.shuffle), (val_files, False))]

    torch.manual_seed(seed)  # the same initial weights on every rank
    model = GPT(cfg.model).to(ctx.device)
    optimizer = configure_optimizer(model, cfg, ctx.device.type)
    hellaswag = [None]  # rank 0 decides, so every rank runs HellaSwag or none does
    if ctx.rank == 0 and cfg.eval.hellaswag_every:
        try:
            hellaswag = [load_hellaswag(cfg)]
        except (UserError, OSError, ValueError, KeyError) as e:
            events.emit("log", level="warning", message=f"HellaSwag skipped for this run: {e}")
    if ctx.ddp:
        dist.broadcast_object_list(hellaswag, src=0)
    run = Run(cfg, ctx, events, run_dir, model, optimizer, *loaders, autocast, hellaswag[0])
    step, evals_done = 0, False
    if checkpoints and resume:
        saved = torch.load(checkpoints[-1] / "checkpoint.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        run.train_loader.load_state_dict(saved["data"])
        if ctx.rank < len(saved["rng"]):  # resumed on more ranks: the new ones keep their own
            restore_rng(saved["rng"][ctx.rank], ctx.device)
        step, run.tokens, evals_done = saved["step"], saved["tokens"], saved["evals_done"]
    state["step"] = step
    name = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else cpu_name()
    events.emit("run_start", config=dataclasses.asdict(cfg), trainer="onefile",
                params=sum(p.numel() for p in model.parameters()), world_size=ctx.world_size,
                device=str(ctx.device), device_name=name, dtype=str(dtype).removeprefix("torch."),
                grad_accum_steps=cfg.optim.total_batch_size // per_step,
                max_steps=cfg.schedule.max_steps, start_step=step,
                resumed_from_step=step if checkpoints and resume else None, peak_flops=None)
    return run, step, evals_done

def cpu_name() -> str:
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo", encoding="utf-8") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    return "cpu"

def keep_freed_memory() -> None:
    """glibc hands big freed blocks back to the OS, so every CPU step page-faults its activations
    afresh (~1 s of a 2.4 s bench step): keep them (M_MMAP_MAX = 0, trim threshold 2 GiB)."""
    import ctypes
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0) and libc.mallopt(-1, 2**31 - 1)

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train a GPT-2 in one file.")
    p.add_argument("--config", required=True, help="TOML config (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--run-dir", help="default $GPT_CONSOLE_RUN_DIR, else runs/manual-<config>")
    p.add_argument("--events", help="default $GPT_CONSOLE_EVENTS, else <run dir>/events.jsonl")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir or os.environ.get("GPT_CONSOLE_RUN_DIR")
                   or f"runs/manual-{Path(args.config).stem}").absolute()
    state = {"stop": None, "step": 0}  # why the run should stop (a signal), and the steps done
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _: state.update(stop=state["stop"]
                                                        or f"signal {signal.Signals(s).name}"))
    master = int(os.environ.get("RANK", "0")) == 0
    events_path = args.events or os.environ.get("GPT_CONSOLE_EVENTS") or run_dir / "events.jsonl"
    events, ctx, code = Events(Path(events_path), master), None, 0
    try:
        cfg = load_config(args.config, args.set)
        ctx = setup_distributed(cfg.system.device)
        if ctx.device.type == "cpu":
            keep_freed_memory()
        run, start, evals_done = setup(cfg, ctx, run_dir, events, args, state)
        status, reason, step = train(cfg, ctx, run, start, evals_done, state)
        events.emit("run_end", status=status, reason=reason, step=step)
        if master:
            print(f"run {status} at step {step}: {reason}", flush=True)
        code = 1 if status == "failed" else 0
    except Exception as e:  # every failure ends the run with an error event and a run_end
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):  # the user can fix this too
            e = UserError(f"disk full: could not write {e.filename}: free some space, then resume")
        user = isinstance(e, (UserError, tomllib.TOMLDecodeError, FileNotFoundError))
        message = str(e) if user else f"{type(e).__name__}: {e}"
        events.emit("error", message=message, traceback="" if user else traceback.format_exc())
        events.emit("run_end", status="failed", reason=message.splitlines()[0][:300],
                    step=state["step"])
        print(message if user else traceback.format_exc(), file=sys.stderr, flush=True)
        code = 2 if user else 1
    finally:
        if ctx is not None and ctx.ddp:
            gc.collect()  # DDP's gloo work objects must go before their process group
            dist.destroy_process_group()
    return code


if __name__ == "__main__":
    os.umask(0o077)  # the run directory and its files are private to the user
    sys.exit(main())
