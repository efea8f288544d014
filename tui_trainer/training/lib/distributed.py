"""Process group set-up and teardown: single process, torchrun on one machine, or multi-node via torchrun's env.

torchrun exports RANK, LOCAL_RANK and WORLD_SIZE (plus MASTER_ADDR/PORT); without them this is one process
with no process group. The backend follows the device (nccl for CUDA, gloo for CPU, ...).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .errors import UserError


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None       # None when single-process
    ddp_model: Any = None             # the DDP wrapper, released by teardown_distributed before the group dies

    @property
    def is_distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def device_type(self) -> str:
        return self.device.type


def under_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def _detect_accelerator() -> str:
    """'cuda', 'mps', 'xpu', ... or 'cpu' — torch.accelerator where this torch has it."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return accelerator.current_accelerator().type if accelerator.is_available() else "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return "cpu"


def resolve_device(setting: str, local_rank: int, distributed: bool) -> torch.device:
    """The device for system.device. Under torchrun each rank takes the accelerator numbered by its local
    rank (an explicit 'cuda:N' only picks the GPU of a single-process run)."""
    kind = _detect_accelerator() if setting == "auto" else setting.split(":")[0]
    if kind == "cpu" or kind == "mps":
        return torch.device(kind)
    if distributed:
        return torch.device(kind, local_rank)
    return torch.device(setting if ":" in setting else f"{kind}:0")


def _backend_for(device: torch.device) -> str:
    get_default = getattr(dist, "get_default_backend_for_device", None)
    if get_default is not None:
        return get_default(device)
    return "nccl" if device.type == "cuda" else "gloo"


def setup_distributed(device_setting: str = "auto", *, timeout_minutes: float = 30.0) -> DistContext:
    """Join torchrun's process group if launched by torchrun, else describe a single process."""
    if not under_torchrun():
        return DistContext(device=_checked(resolve_device(device_setting, 0, False)))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    device = _checked(resolve_device(device_setting, local_rank, True))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif device.type == "xpu":
        torch.xpu.set_device(device)
    backend = _backend_for(device)
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(minutes=timeout_minutes)}
    if backend == "nccl":
        kwargs["device_id"] = device  # binds the communicator now; barrier() then knows its GPU
    dist.init_process_group(**kwargs)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device, backend=backend)


class SetupError(UserError, RuntimeError):
    """A set-up the user asked for that this machine cannot give (shown as one paragraph, exit 2)."""


def _checked(device: torch.device) -> torch.device:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SetupError(f"system.device asks for {device} but this PyTorch sees no CUDA GPU — "
                           "set system.device = \"auto\" or \"cpu\", or install a CUDA build of PyTorch")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SetupError("system.device asks for mps but it is not available — use \"auto\" or \"cpu\"")
    if device.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise SetupError("system.device asks for xpu but it is not available — use \"auto\" or \"cpu\"")
    return device


def wrap_ddp(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DDP-wrap ``model`` when distributed (else return it). The wrapper is remembered on ``ctx`` so
    teardown_distributed can drop it before the process group goes away."""
    if not ctx.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    device_ids = [ctx.device.index] if ctx.device.type in ("cuda", "xpu") else None
    ctx.ddp_model = DDP(model, device_ids=device_ids)
    return ctx.ddp_model


def wrap_for_training(model: torch.nn.Module, ctx: DistContext, *, compile: bool) -> torch.nn.Module:
    """The module the training step calls: DDP around the raw model when distributed, then torch.compile
    around that when asked. This is PyTorch's recommended order: compiling the DDP module lets Dynamo split
    the graph at DDP's gradient buckets, so each bucket's all-reduce overlaps the rest of the backward. (DDP
    around a compiled module only sees gradients when the whole compiled backward has finished.) Evaluation
    and sampling use the raw model, which shares the parameters."""
    trained = wrap_ddp(model, ctx)
    return torch.compile(trained) if compile else trained


def barrier(ctx: DistContext) -> None:
    if not ctx.is_distributed:
        return
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def teardown_distributed(ctx: DistContext) -> None:
    """Leave the process group cleanly. The DDP wrapper holds gloo work objects whose destructors abort the
    interpreter if they run after destroy_process_group, so it is released (and collected) first. Callers
    must not keep other references to the DDP model past this point."""
    ctx.ddp_model = None
    gc.collect()
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()
