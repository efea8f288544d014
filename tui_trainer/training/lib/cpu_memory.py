"""Keep freed memory in the process on Linux/glibc, so big tensors do not page-fault afresh every step.

glibc's malloc serves every block above 32 MB with a fresh ``mmap`` and hands it back to the kernel on ``free``.
A training step on the CPU allocates and frees many such blocks (logits, their gradients, the embedding's
gradient, the bf16 copy of the tied head weight...), so every step the kernel maps and zeroes them again, one
4 KiB page fault at a time (the bench model's 2048 × 50,304 fp32 logits alone are 412 MB: ~100,000 pages).

``keep_freed_memory()`` sets two malloc parameters at run time (``mallopt``): no ``mmap`` for big blocks
(``M_MMAP_MAX = 0``) and no trimming of the heap's free top (``M_TRIM_THRESHOLD`` = 2 GiB), so freed blocks are
reused by the next step without faults (after a few steps the heap settles); ``python -m
benchmarks.ablation_bench`` measures the effect on the bench model's step ("+ malloc"). The cost: the process
keeps its peak heap instead of returning it to the system between steps — right for a trainer whose steps all
look alike. Other platforms and allocators are left as they are (the call returns False).
Self-contained (stdlib ctypes), so the one-file trainer can copy it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Tune glibc malloc as described above; True if it took effect, False where it does not apply."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 on error
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
