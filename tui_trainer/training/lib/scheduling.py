"""Learning-rate schedule: linear warmup, then cosine / linear / constant decay to max_lr × min_lr_ratio."""

from __future__ import annotations

import math

from .config import TrainingConfig


def get_lr(step: int, cfg: TrainingConfig) -> float:
    """Learning rate for the 0-based optimizer ``step`` (build-nanogpt's formula, schedule kind from the config).

    Warmup climbs linearly from max_lr/warmup_steps (step 0) to max_lr (step warmup_steps-1); decay then runs
    from max_lr at step warmup_steps towards the floor, reached at max_steps (and held after it).
    """
    max_lr = cfg.optim.max_lr
    min_lr = max_lr * cfg.optim.min_lr_ratio
    warmup, max_steps = cfg.schedule.warmup_steps, cfg.schedule.max_steps
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if cfg.schedule.kind == "constant":
        return max_lr
    if step >= max_steps:
        return min_lr
    progress = (step - warmup) / max(1, max_steps - warmup)  # 0 at the end of warmup, -> 1 at max_steps
    if cfg.schedule.kind == "linear":
        coeff = 1.0 - progress
    else:  # cosine
        coeff = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr + coeff * (max_lr - min_lr)
