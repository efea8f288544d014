"""One optimizer step, and the per-step agreement between ranks.

Kept apart from the loop so the arithmetic is easy to read, to mirror in the one-file trainer, and to speed up.
"""

from __future__ import annotations

import math
from typing import Callable, ContextManager

import torch
import torch.distributed as dist


def train_step(model: torch.nn.Module, raw_model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader,
               *, accum: int, lr: float, grad_clip: float, device: torch.device,
               autocast: Callable[[], ContextManager], distributed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward/backward ``accum`` micro-batches, clip, update. Returns (this rank's mean loss, the global grad
    norm before clipping) as device tensors — no host sync here.

    ``model`` is what trains (maybe DDP-wrapped, maybe compiled); ``raw_model`` owns the parameters. Under DDP,
    gradients are all-reduced only on the last micro-step; the others accumulate locally (no_sync semantics).
    """
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
        loss = loss / accum  # the gradient of the mean over all micro-batches
        loss_sum += loss.detach()
        loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    optimizer.step()
    return loss_sum, norm


def agree(loss: torch.Tensor, norm: torch.Tensor, flags: list[bool], *, world_size: int,
          distributed: bool) -> tuple[float, float, list[bool]]:
    """One all-reduce and one host sync per step: the loss averaged over ranks, the grad norm (the same on every
    rank after DDP's gradient all-reduce), and each flag OR-ed over ranks (a SIGTERM on any rank stops all)."""
    packed = torch.cat([loss.double().view(1), norm.double().view(1),
                        torch.tensor(flags, dtype=torch.float64, device=loss.device)])
    if distributed:
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)  # SUM: gloo has no AVG
    values = packed.tolist()
    return values[0] / world_size, values[1] / world_size, [v > 0 for v in values[2:]]
