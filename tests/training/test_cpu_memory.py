"""keep_freed_memory(): in a steady training loop, big tensors stop page-faulting afresh every step (glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Steps of the fused head (its (512, 50304) bf16 gradient buffer is 51 MB, above glibc's 32 MB mmap threshold),
# counting the minor page faults of each of the last steps once the heap has settled.
PROBE = r"""
import resource, sys
import torch
from tui_trainer.training.lib.cpu_memory import keep_freed_memory
from tui_trainer.training.lib.fused_head import fused_linear_cross_entropy
torch.set_num_threads(1)
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
g = torch.Generator().manual_seed(0)
hidden = torch.randn(512, 64, generator=g, requires_grad=True)
weight = torch.randn(50304, 64, generator=g, requires_grad=True)
targets = torch.randint(0, 50304, (512,), generator=g)
def faults_of_one_step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    hidden.grad = weight.grad = None
    fused_linear_cross_entropy(hidden, weight, targets, compute_dtype=torch.bfloat16).backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults = [faults_of_one_step() for _ in range(15)]
print(min(faults[-3:]))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_steady_loop_stops_page_faulting():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    assert faults("default") > 12_000  # the 51 MB buffer, 4 KiB pages mapped and zeroed afresh every step
    assert faults("tuned") < 100       # freed blocks come back from the heap
