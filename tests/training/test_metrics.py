"""MFU peak table, precision choice and device resolution."""

from __future__ import annotations

import pytest
import torch

from tui_trainer.training.lib.distributed import resolve_device, setup_distributed
from tui_trainer.training.lib.metrics import compute_mfu, device_name, peak_flops
from tui_trainer.training.lib.precision import make_autocast, resolve_dtype


@pytest.mark.parametrize("name,dtype,tf32,expected", [
    ("NVIDIA H100 80GB HBM3", torch.bfloat16, True, 989.4e12),
    ("NVIDIA H100 PCIe", torch.bfloat16, True, 756.5e12),
    ("NVIDIA H100 NVL", torch.float32, True, 417.5e12),
    ("NVIDIA A100-SXM4-80GB", torch.bfloat16, True, 312e12),
    ("NVIDIA A100-PCIE-40GB", torch.float32, True, 156e12),
    ("NVIDIA A100-SXM4-40GB", torch.float32, False, 19.5e12),
    ("NVIDIA A10", torch.bfloat16, True, 125e12),
    ("NVIDIA L4", torch.bfloat16, True, 121e12),
    ("NVIDIA L40S", torch.bfloat16, True, 362.05e12),
])
def test_peak_table(name, dtype, tf32, expected):
    assert peak_flops(name, "cuda", dtype, tf32) == pytest.approx(expected)


def test_unknown_devices_have_no_peak():
    assert peak_flops("NVIDIA A10G", "cuda", torch.bfloat16, True) is None  # not A10, not in the table
    assert peak_flops("Tesla V100-SXM2-16GB", "cuda", torch.bfloat16, True) is None  # no bf16 tensor cores
    assert peak_flops("Some Future GPU", "cuda", torch.bfloat16, True) is None
    assert peak_flops("Apple M2", "mps", torch.float32, True) is None


def test_cpu_peak_is_measured(monkeypatch, tmp_path):
    from tui_trainer.training.lib import peak
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the probe's cache (lib/peak.py), not the user's
    monkeypatch.setattr(peak, "_MEMO", {})
    flops = peak_flops(device_name(torch.device("cpu")), "cpu", torch.float32, True)
    assert 1e9 < flops < 1e15
    assert (tmp_path / "gpt-console" / "cpu_peak.json").is_file()


def test_mfu():
    # 124M GPT-2 at 1.5M tok/s on 8 H100s (bf16): the build-nanogpt ballpark of ~40% MFU
    assert compute_mfu(7.5e8, 1.5e6, 989.4e12, 8) == pytest.approx(7.5e8 * 1.5e6 / (8 * 989.4e12))
    assert compute_mfu(7.5e8, 1.5e6, None, 8) is None


def test_precision_choice_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_dtype("float32", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype("auto", cpu) in (torch.float32, torch.bfloat16)
    with make_autocast(cpu, torch.bfloat16)():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with make_autocast(cpu, torch.float32)():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_single_process_without_torchrun(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_distributed, ctx.device) == (0, 1, False, torch.device("cpu"))
    assert resolve_device("cuda:3", 1, distributed=True) == torch.device("cuda", 1)  # ranks take their local GPU
    assert resolve_device("cuda:3", 0, distributed=False) == torch.device("cuda", 3)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            setup_distributed("cuda")
