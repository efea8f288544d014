"""A CPU's peak matmul FLOP/s, measured once per machine by a short probe and cached.

CPUs have no datasheet figure torch can look up (clock, cores, vector width and AMX/AVX512-BF16 all matter, and a
VM hides most of them), so MFU on a CPU is measured against what this machine's matmul actually reaches: square
matmuls of a few sizes, best of several repetitions, about a second per dtype. The best rate, not the mean, is
the peak — other load on the machine can only make a probe slower.

The result is cached as JSON in ``$XDG_CACHE_HOME/gpt-console/cpu_peak.json`` (default ``~/.cache``), keyed by
CPU model + torch version + thread count + dtype, so every run on the same machine and set-up reuses one figure
and a new torch, CPU or thread count gets a fresh probe. A cache that cannot be read or written is not an error:
the probe result is used for this process only.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

CACHE_FILE = "cpu_peak.json"
PROBE_SIZES = (1024, 2048)  # square matmul sides; the faster one is the peak
_MEMO: dict[str, float] = {}


def cpu_model() -> str:
    """The CPU's model string plus family/model numbers (VMs often show only a generic name)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                key = key.strip()
                if not sep:
                    if fields:
                        break  # end of the first processor's block
                    continue
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "cpu"
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    return " / ".join([name] + ids)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpt-console"


def cache_key(dtype: torch.dtype, threads: int) -> str:
    return f"{cpu_model()} | torch {torch.__version__} | {threads} threads | {str(dtype).replace('torch.', '')}"


def measure_matmul_flops(dtype: torch.dtype, *, sizes: tuple[int, ...] = PROBE_SIZES,
                         seconds: float = 0.5) -> float:
    """Best achieved FLOP/s of ``sizes``² matmuls in ``dtype`` on the CPU with the current torch threads."""
    best = 0.0
    budget = seconds / len(sizes)
    for n in sizes:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up: kernel selection, page faults
        deadline = time.perf_counter() + budget
        reps = 0
        while reps < 2 or time.perf_counter() < deadline:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            dt = time.perf_counter() - t0
            best = max(best, 2 * n ** 3 / dt)
            reps += 1
    return best


def _read_cache(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError, TypeError):
        return {}


def _write_cache(path: Path, data: dict[str, float]) -> None:
    """Atomic replace, so two ranks probing at once never leave a torn file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cpu_peak.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only home: the figure still serves this process


def cpu_peak_flops(dtype: torch.dtype, *, threads: int | None = None, cache_dir: str | os.PathLike | None = None,
                   refresh: bool = False, probe_seconds: float = 0.5) -> float:
    """Peak matmul FLOP/s of this CPU in ``dtype`` with ``threads`` (default: torch's current count).

    Cached per machine (see the module docstring); ``refresh`` re-measures. Only float32 and bfloat16 are
    probed — the dtypes the trainer runs in.
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"no CPU peak probe for {dtype}; use torch.float32 or torch.bfloat16")
    threads = threads or torch.get_num_threads()
    key = cache_key(dtype, threads)
    if not refresh and key in _MEMO:
        return _MEMO[key]
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / CACHE_FILE
    cached = {} if refresh else _read_cache(path)
    if key in cached and cached[key] > 0:
        _MEMO[key] = cached[key]
        return cached[key]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        flops = measure_matmul_flops(dtype, seconds=probe_seconds)
    finally:
        torch.set_num_threads(previous)
    merged = _read_cache(path)  # another process may have added keys meanwhile
    merged[key] = flops
    _write_cache(path, merged)
    _MEMO[key] = flops
    return flops


def main(argv: list[str] | None = None) -> None:
    """``python -m tui_trainer.training.lib.peak [--refresh] [--threads N]``: show (or re-measure) the cached peaks.

    Re-measure after the machine was busy during a first run: a probe that shared the CPU reads low, and every
    MFU figure after it reads high.
    """
    import argparse
    p = argparse.ArgumentParser(prog="python -m tui_trainer.training.lib.peak", description=main.__doc__.split("\n")[0])
    p.add_argument("--refresh", action="store_true", help="measure again instead of reading the cache")
    p.add_argument("--threads", type=int, default=0, help="threads to probe with (default: torch's count)")
    args = p.parse_args(argv)
    for dtype in (torch.bfloat16, torch.float32):
        flops = cpu_peak_flops(dtype, threads=args.threads or None, refresh=args.refresh)
        print(f"{cache_key(dtype, args.threads or torch.get_num_threads())}: {flops / 1e12:.3f} TFLOP/s")
    print(f"cache: {default_cache_dir() / CACHE_FILE}")


if __name__ == "__main__":
    main()
