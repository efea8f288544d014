"""Will the run fit in memory? A lower bound of what one rank needs, checked against the machine before the
model is built, so a config that can only crash the allocator (or push a machine without swap into the OOM
killer) is refused up front with the key to change.

The bound counts only what training cannot do without: 16 bytes per parameter (fp32 weights, gradients,
AdamW's two moments) and the residual stream every block keeps for the backward pass (4 bytes × micro_batch ×
block_size × n_embd × n_layer). Real use is higher (attention, MLP and logits activations, allocator slack),
so a config refused here could never run; one accepted may still need a smaller micro_batch_size.
Torch-free, except ``machine_memory`` on CUDA.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import ConfigError, ConfigProblem, TrainingConfig, parameter_count

GB = 1024**3
_MODEL_KEYS = ("n_layer", "n_embd", "vocab_size", "block_size")


def training_bytes_lower_bound(cfg: TrainingConfig) -> tuple[int, int]:
    """(bytes of weights + gradients + AdamW state, bytes of the residual activations) for one rank."""
    m = cfg.model
    state = 16 * parameter_count(cfg)
    activations = 4 * cfg.optim.micro_batch_size * m.block_size * m.n_embd * m.n_layer
    return state, activations


def memory_problems(cfg: TrainingConfig, available: int, where: str,
                    ranks_sharing: int = 1) -> list[ConfigProblem]:
    """The problem (at most one) when ``ranks_sharing`` ranks cannot fit in ``available`` bytes."""
    state, activations = training_bytes_lower_bound(cfg)
    need = (state + activations) * ranks_sharing
    if need <= available:
        return []
    ranks = f" for {ranks_sharing} ranks" if ranks_sharing > 1 else ""
    reason = (f"needs at least {need / GB:,.1f} GB{ranks} ({parameter_count(cfg):,} parameters × 16 bytes "
              f"for weights, gradients and AdamW state = {state / GB:,.1f} GB, plus "
              f"{activations / GB:,.1f} GB of activations per micro-batch) but {where} is "
              f"{available / GB:,.1f} GB")
    if state * ranks_sharing <= available and cfg.optim.micro_batch_size > 1:
        return [ConfigProblem("optim.micro_batch_size", reason,
                              "lower optim.micro_batch_size (gradient accumulation keeps the step size)")]
    defaults = TrainingConfig().model
    key = max(_MODEL_KEYS, key=lambda k: getattr(cfg.model, k) / getattr(defaults, k))
    return [ConfigProblem(f"model.{key}", reason,
                          f"use a smaller model (lower model.{key}) or a bigger machine")]


def machine_memory(device) -> tuple[int | None, str]:
    """(bytes one rank's device can hold, a name for it): a GPU's total memory, else the RAM available now."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch
        _, total = torch.cuda.mem_get_info(device)
        return total, f"the memory of the GPU {torch.cuda.get_device_name(device)}"
    return _mem_available(), "this machine's available RAM"


def check_memory(cfg: TrainingConfig, device) -> None:
    """Raise ConfigError when the run cannot fit. A machine's CPU ranks share its RAM; a GPU is its rank's."""
    available, where = machine_memory(device)
    if available is None:
        return  # not Linux: nothing to check against
    on_gpu = getattr(device, "type", "cpu") == "cuda"
    sharing = 1 if on_gpu else int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    problems = memory_problems(cfg, available, where, sharing)
    if problems:
        raise ConfigError(problems, "(memory check)")


def _mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
