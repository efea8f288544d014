"""System metrics on a real CUDA GPU through the real NVML (nvidia-ml-py). Skipped without both."""

from __future__ import annotations

import pytest
import torch

from tui_trainer.channel.schema import validate_event
from tui_trainer.training.lib import system_metrics as sm

from . import harness as H

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or sm.load_nvml() is None,
                                reason="needs a CUDA GPU and nvidia-ml-py")


def test_nvml_sees_this_processs_allocation_on_its_gpu():
    device = torch.device("cuda", 0)
    gpu = sm.open_gpu(device)
    assert gpu is not None
    before = gpu.read()
    assert None not in before.values(), before
    total = torch.cuda.get_device_properties(device).total_memory
    assert abs(before["gpu_mem_total_bytes"] - total) < 0.05 * total
    block = torch.empty(1 << 30, dtype=torch.uint8, device=device)  # 1 GiB
    block.fill_(1)
    torch.cuda.synchronize()
    after = gpu.read()
    assert after["gpu_mem_used_bytes"] - before["gpu_mem_used_bytes"] >= 0.9 * (1 << 30)
    assert 0 <= after["gpu_util_percent"] <= 100 and after["gpu_power_watts"] > 0
    assert 10 <= after["gpu_temperature_c"] <= 110
    figures = sm.sample_figures(sm.CpuMeter(), gpu, lambda: torch.cuda.max_memory_allocated(device), node=0)
    assert figures["torch_max_memory_allocated_bytes"] >= 1 << 30
    del block


@pytest.mark.slow
def test_a_cuda_run_reports_its_gpu(tmp_path):
    corpus = H.write_corpus(tmp_path)
    config = H.write_config(tmp_path, corpus, tmp_path / "shards")
    r = H.run_trainer(config, tmp_path / "run", "system.device=cuda", "system.metrics_seconds=0.3",
                      "schedule.max_steps=60", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    system = H.of_type(H.read_events(tmp_path / "run"), "system")
    assert system
    for event in system:
        assert validate_event(event) == []
    rank = system[-1]["ranks"][0]
    for name in sm.GPU_FIELDS + ("torch_max_memory_allocated_bytes", "rss_bytes", "cpu_percent"):
        assert rank[name] is not None, name
    assert rank["gpu_mem_used_bytes"] >= rank["torch_max_memory_allocated_bytes"] > 0
