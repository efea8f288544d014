"""AdamW as in GPT-2/3: weight decay on the matmul/embedding weights (>= 2-D), none on biases and LayerNorms."""

from __future__ import annotations

import torch

from .config import TrainingConfig
from .distributed import SetupError


def use_fused_adamw(setting: str, device_type: str) -> bool:
    """optim.fused: 'auto' = the fused kernel on CUDA and CPU, 'on' / 'off' as asked.

    On the CPU the fused kernel does one pass over weights, gradients and moments where the foreach one does
    several; ``python -m benchmarks.ablation_bench`` measures its effect on the bench model's step
    ("+ fused AdamW").
    """
    if setting == "on":
        return True
    if setting == "off":
        return False
    return device_type in ("cuda", "cpu")


def configure_optimizer(model: torch.nn.Module, cfg: TrainingConfig, device_type: str) -> torch.optim.AdamW:
    """AdamW with two parameter groups (decay / no decay). The tied embedding/head weight appears once."""
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() yields shared tensors once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = use_fused_adamw(cfg.optim.fused, device_type)
    try:
        return torch.optim.AdamW(groups, lr=cfg.optim.max_lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                                 eps=cfg.optim.eps, fused=fused)
    except RuntimeError as e:
        if not fused:
            raise
        if cfg.optim.fused == "auto":  # an older torch without this device's kernel: the plain one is fine
            return torch.optim.AdamW(groups, lr=cfg.optim.max_lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                                     eps=cfg.optim.eps, fused=False)
        raise SetupError(f"optim.fused = \"on\" but this PyTorch has no fused AdamW for {device_type} ({e}) — "
                           "set optim.fused = \"auto\" or \"off\"") from None
