"""The editor's derived panel: what a config means in parameters, tokens, memory and (when this machine has
already trained the same shape) time. Pure arithmetic over ``derived_figures()``; no Textual, no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tui_trainer.app import format as fmt
from tui_trainer.training.lib.config import TrainingConfig, derived_figures

# Activation memory per layer per token, in 16-bit values, for a GPT block with fused (flash) attention:
# Korthikanti et al. 2022, "Reducing Activation Recomputation", table 2 (34·h without the 5·a·s/h softmax
# term, which SDPA does not store).
ACTIVATION_VALUES_PER_LAYER_TOKEN = 17  # × n_embd × 2 bytes = 34·h bytes


@dataclass(frozen=True)
class Throughput:
    """A measured training speed for this config's shape on this machine, from an earlier run."""
    tok_per_s: float
    run_id: str


def activation_bytes(cfg: TrainingConfig, bytes_per_value: int) -> int:
    """Rough activation memory of one micro-batch on one rank (the part micro_batch_size controls)."""
    b, t, c, layers = cfg.optim.micro_batch_size, cfg.model.block_size, cfg.model.n_embd, cfg.model.n_layer
    blocks = layers * b * t * c * ACTIVATION_VALUES_PER_LAYER_TOKEN * bytes_per_value
    logits = b * t * cfg.model.vocab_size * (bytes_per_value + 4)  # logits plus their fp32 softmax for the loss
    return blocks + logits


def autocast_bytes(cfg: TrainingConfig) -> int:
    """'auto' means bfloat16 on the machines this is for (CUDA with bf16, CPUs with AVX512-BF16 or AMX); assume it."""
    return 4 if cfg.system.dtype == "float32" else 2


def memory_per_rank(cfg: TrainingConfig) -> int:
    """Estimated peak bytes one rank needs: fp32 weights, grads and AdamW moments plus one micro-batch of
    activations. The editor's derived panel and its preflight use it (stdlib only: a trainer may too)."""
    return derived_figures(cfg)["state_bytes_per_rank"] + activation_bytes(cfg, autocast_bytes(cfg))


def same_shape(cfg: TrainingConfig, other: dict) -> bool:
    """Would a run with config dict ``other`` train at the same speed per token as ``cfg``?"""
    try:
        return (other["model"] == {k: getattr(cfg.model, k) for k in other["model"]}
                and other["optim"]["micro_batch_size"] == cfg.optim.micro_batch_size
                and other["launch"]["nproc_per_node"] == cfg.launch.nproc_per_node
                and other["launch"]["nnodes"] == cfg.launch.nnodes
                and other["system"]["dtype"] == cfg.system.dtype
                and other["system"]["compile"] == cfg.system.compile)
    except (KeyError, TypeError):
        return False


def known_throughput(cfg: TrainingConfig, runs: Iterable[tuple[str, object]]) -> Throughput | None:
    """The newest tok/s among earlier runs (id, RunSummary) of the same shape that got past warm-up."""
    for run_id, summary in runs:
        config = getattr(summary, "config", None)
        tok = getattr(summary, "tok_per_s", None)
        step = getattr(summary, "step", None)
        if config and tok and step is not None and step >= 2 and same_shape(cfg, config):
            return Throughput(float(tok), run_id)
    return None


def derived_lines(cfg: TrainingConfig, throughput: Throughput | None = None) -> list[tuple[str, str]]:
    """(label, value) rows for the panel."""
    d = derived_figures(cfg)
    accum = d["grad_accum_steps"]
    value_bytes = autocast_bytes(cfg)
    acts = activation_bytes(cfg, value_bytes)
    rows = [
        ("parameters", f"{fmt.count(d['parameters'])}  ({d['parameters']:,})"),
        ("world size", f"{d['world_size']}  ({cfg.launch.nproc_per_node} per node × {cfg.launch.nnodes})"),
        ("tokens / step", f"{d['tokens_per_step']:,}"),
        ("micro-batch", f"{cfg.optim.micro_batch_size} × {cfg.model.block_size} = "
                        f"{d['tokens_per_micro_step']:,} tokens / rank"),
        ("grad accum / rank", "—" if accum is None else str(accum)),
        ("total tokens", f"{fmt.count(d['total_tokens'])}  ({cfg.schedule.max_steps:,} steps)"),
        ("FLOPs / token", fmt.count(d["flops_per_token"])),
        ("memory / rank", f"≈ {fmt.nbytes(memory_per_rank(cfg))}"),
        ("  weights+AdamW", fmt.nbytes(d["state_bytes_per_rank"])),
        ("  activations", f"≈ {fmt.nbytes(acts)} ({'fp32' if value_bytes == 4 else 'bf16'})"),
    ]
    if throughput is not None:
        seconds = d["total_tokens"] / throughput.tok_per_s
        rows.append(("est. duration", f"{fmt.duration(seconds)} at {fmt.count(throughput.tok_per_s)} tok/s"))
        rows.append(("  measured by", throughput.run_id))
    else:
        rows.append(("est. duration", "unknown until a run of this shape has trained here"))
    return rows
