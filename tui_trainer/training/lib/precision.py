"""Numeric precision: which autocast dtype to train in, TF32 on CUDA, and the autocast callable.

'auto' picks bfloat16 where the hardware multiplies it natively — CUDA GPUs with bf16 support, and CPUs with
AMX-BF16 or AVX512-BF16 (measured on this project's 2-core AVX512-BF16 box: a 1024² matmul runs at ~880 GFLOP/s
in bf16 vs ~183 in fp32, and training tok/s rises accordingly) — and float32 elsewhere, where bf16 would be
emulated and slower. Weights, gradients and optimizer state stay fp32 either way (autocast only).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, ContextManager

import torch

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has AMX-BF16 or AVX512-BF16 instructions (Linux /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in _NATIVE_BF16_CPU_FLAGS)
    except OSError:
        pass
    # Elsewhere (macOS, Windows) trust torch's own ISA detection; AMX implies native bf16.
    return "AMX" in torch.backends.cpu.get_cpu_capability().upper()


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """The autocast dtype for system.dtype ('auto', 'float32', 'bfloat16') on ``device``."""
    if setting != "auto":
        return _DTYPES[setting]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return torch.float32  # mps/xpu: stay exact until someone measures a win there


def make_autocast(device: torch.device, dtype: torch.dtype) -> Callable[[], ContextManager]:
    """A zero-argument callable returning a fresh autocast context (a no-op one for float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device_type=device.type, dtype=dtype)


def enable_tf32() -> None:
    """Let CUDA fp32 matmuls use TF32 tensor cores (the 124M recipe does; ~3x on A100/H100).

    One API only, the long-standing ``set_float32_matmul_precision``: on torch >= 2.9, setting the newer
    ``fp32_precision`` attributes makes every later read of the legacy ones (``allow_tf32``,
    ``get_float32_matmul_precision()``, which Inductor calls) raise "mix of the legacy and new APIs".
    """
    torch.set_float32_matmul_precision("high")


def configure_precision(dtype_setting: str, tf32: bool, device: torch.device
                        ) -> tuple[torch.dtype, Callable[[], ContextManager]]:
    """Resolve the dtype, switch TF32 on where asked, and return (dtype, autocast callable)."""
    dtype = resolve_dtype(dtype_setting, device)
    if device.type == "cuda" and tf32:
        enable_tf32()
    return dtype, make_autocast(device, dtype)
