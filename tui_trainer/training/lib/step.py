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
    if finite_on_every_rank(loss_sum, norm, distributed):
        optimizer.step()
    else:  # NaN/inf: skip the update on every rank alike (lib/health.py counts and reports it)
        optimizer.zero_grad(set_to_none=True)
    return loss_sum, norm


def weights_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter is finite. Checked only when a run is about to stop for divergence (a full pass
    over the weights): an update can leave finite gradients but inf weights, which must never be saved as the
    "last finite state". DDP keeps the weights identical on every rank, so every rank gets the same answer."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def finite_on_every_rank(loss: torch.Tensor, norm: torch.Tensor, distributed: bool) -> bool:
    """Whether every rank's loss and the grad norm are finite. Under DDP the norm is already the same everywhere,
    but a rank's loss is its own, so the verdict is a MIN over ranks: all ranks step, or none does."""
    ok = (torch.isfinite(loss) & torch.isfinite(norm)).to(torch.float32).view(1)
    if distributed:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def agree(loss: torch.Tensor, norm: torch.Tensor, flags: list[bool], *, world_size: int,
          distributed: bool) -> tuple[float, float, list[bool]]:
    """One all-reduce and one host sync per step: the loss averaged over ranks, the grad norm (the same on every
    rank after DDP's gradient all-reduce), and each flag OR-ed over ranks (a SIGTERM on any rank stops all)."""
    loss_f, norm_f, agreed, _ = agree_with_figures(loss, norm, flags, [], world_size=world_size,
                                                   distributed=distributed)
    return loss_f, norm_f, agreed


def agree_with_figures(loss: torch.Tensor, norm: torch.Tensor, flags: list[bool], figures: list[float], *,
                       world_size: int, distributed: bool) -> tuple[float, float, list[bool], list[float]]:
    """``agree``, with ``figures`` summed over ranks in the same all-reduce (system_metrics.py puts each
    rank's figures in its own slot of zeros, so the sum gathers them without a collective of its own)."""
    packed = torch.cat([loss.double().view(1), norm.double().view(1),
                        torch.tensor([*flags, *figures], dtype=torch.float64, device=loss.device)])
    if distributed:
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)  # SUM: gloo has no AVG
    values = packed.tolist()
    n = 2 + len(flags)
    return values[0] / world_size, values[1] / world_size, [v > 0 for v in values[2:n]], values[n:]
