"""keep_freed_memory(): after it, a big tensor allocated again does not page-fault again (Linux/glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = r"""
import resource, sys
import torch
from tui_trainer.training.lib.cpu_memory import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
def faults_for_fresh_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64, 1024, 1024, dtype=torch.uint8)  # 64 MiB, well above glibc's 32 MiB mmap threshold
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_for_fresh_block()
print(min(faults_for_fresh_block() for _ in range(3)))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_big_blocks_are_reused_without_page_faults():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    untuned, tuned = faults("default"), faults("tuned")
    assert untuned > 10_000  # 64 MiB in 4 KiB pages, mapped afresh every time
    assert tuned < 1_000     # the freed block comes back from the heap
