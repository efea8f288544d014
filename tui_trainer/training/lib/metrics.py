"""Model FLOPs utilisation: achieved training FLOP/s over the device's dense peak for the dtype in use.

Peaks are per device (one GPU / one GCD as torch sees it), dense (no 2:4 sparsity), from the vendors' datasheets:
  NVIDIA H100 (SXM5 / PCIe / NVL), H200: https://www.nvidia.com/en-us/data-center/h100/ and /h200/
  NVIDIA A100: https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf
  NVIDIA A10: https://www.nvidia.com/en-us/data-center/products/a10-gpu/
  NVIDIA L4: https://www.nvidia.com/en-us/data-center/l4/  · L40S: https://www.nvidia.com/en-us/data-center/l40s/
  NVIDIA V100: https://www.nvidia.com/en-us/data-center/v100/ (no bf16 tensor cores)
  NVIDIA B200 (bf16 only): https://www.nvidia.com/en-us/data-center/hgx/ (HGX B200, 8 GPUs, ÷ 8, ÷ 2 for dense)
  AMD Instinct MI300X: https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html
Datasheets quote tensor-core figures "with sparsity"; the table holds half of those. A device or dtype missing
here gives ``None`` — the event says null rather than guess. A CPU's peak is measured instead: a ~1 s matmul
probe in the dtype in use, once per machine / torch version / thread count, cached (peak.py).
"""

from __future__ import annotations

import platform
import re

import torch

T = 1e12
# (pattern on the upper-cased device name, {"bfloat16": .., "tf32": .., "float32": ..}); first match wins.
PEAK_FLOPS: list[tuple[str, dict[str, float | None]]] = [
    (r"H100.*NVL", {"bfloat16": 835.5 * T, "tf32": 417.5 * T, "float32": 60.0 * T}),
    (r"H100.*PCIE", {"bfloat16": 756.5 * T, "tf32": 378.0 * T, "float32": 51.0 * T}),
    (r"H100|H800", {"bfloat16": 989.4 * T, "tf32": 494.7 * T, "float32": 66.9 * T}),   # SXM5
    (r"H200", {"bfloat16": 989.4 * T, "tf32": 494.7 * T, "float32": 66.9 * T}),
    (r"B200", {"bfloat16": 2250.0 * T, "tf32": None, "float32": None}),
    (r"A100|A800", {"bfloat16": 312.0 * T, "tf32": 156.0 * T, "float32": 19.5 * T}),
    (r"\bA10\b", {"bfloat16": 125.0 * T, "tf32": 62.5 * T, "float32": 31.2 * T}),
    (r"L40S", {"bfloat16": 362.05 * T, "tf32": 183.0 * T, "float32": 91.6 * T}),
    (r"\bL4\b", {"bfloat16": 121.0 * T, "tf32": 60.0 * T, "float32": 30.3 * T}),
    (r"V100", {"bfloat16": None, "tf32": None, "float32": 15.7 * T}),
    (r"MI300X", {"bfloat16": 1307.4 * T, "tf32": 653.7 * T, "float32": 163.4 * T}),
]


def device_name(device: torch.device) -> str:
    """A human name for the device: the GPU's marketing name, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "xpu":
        return torch.xpu.get_device_name(device)
    if device.type == "cpu":
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or platform.machine() or "cpu"
    return device.type


def peak_flops(name: str, device_type: str, dtype: torch.dtype, tf32: bool) -> float | None:
    """Dense peak FLOP/s of one device for the matmul precision in use, or None when unknown."""
    if device_type == "cpu" and dtype in (torch.float32, torch.bfloat16):
        from .peak import cpu_peak_flops
        return cpu_peak_flops(dtype)  # with torch's current thread count: this rank's share of the CPU
    if device_type != "cuda":
        return None  # MPS/XPU: no honest single figure yet
    if dtype == torch.bfloat16:
        column = "bfloat16"
    elif dtype == torch.float32:
        column = "tf32" if tf32 else "float32"
    else:
        return None
    upper = name.upper()
    for pattern, peaks in PEAK_FLOPS:
        if re.search(pattern, upper):
            return peaks.get(column)
    return None


def compute_mfu(flops_per_token: int, tokens_per_second: float, peak_per_rank: float | None,
                world_size: int) -> float | None:
    """Fraction of the job's peak achieved, from tokens/s summed over all ranks."""
    if not peak_per_rank or tokens_per_second <= 0:
        return None
    return flops_per_token * tokens_per_second / (peak_per_rank * world_size)
