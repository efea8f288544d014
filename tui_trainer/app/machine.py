"""What this machine offers a run, found without importing torch (the console must start fast): NVIDIA GPUs
and their free memory, CPU cores, available RAM, and whether an optional package is installed.

Every probe is best effort and says how it knows; a figure that cannot be found is None ("unknown"), never a
guess. Used by the editor's preflight checks.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NVIDIA_SMI_TIMEOUT_S = 5.0
PROC_GPUS = Path("/proc/driver/nvidia/gpus")
PROC_MEMINFO = Path("/proc/meminfo")
DEV = Path("/dev")


@dataclass(frozen=True)
class Machine:
    """A snapshot of this host. ``gpus`` None means unknown (a driver is there but could not be asked)."""
    cpu_cores: int
    ram_available: int | None          # bytes, /proc/meminfo MemAvailable
    gpus: int | None
    gpu_free: tuple[int, ...] | None   # bytes free per GPU (nvidia-smi), when known
    gpu_source: str                    # how the GPU figure was found, for the message


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def ram_available(meminfo: Path = PROC_MEMINFO) -> int | None:
    """MemAvailable (what can be allocated without swapping), in bytes; None where /proc/meminfo is absent."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _nvidia_smi() -> tuple[int, tuple[int, ...]] | None:
    """(count, free bytes per GPU) from nvidia-smi, or None if it is absent or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    free = []
    for line in out.stdout.splitlines():
        try:
            free.append(int(float(line.strip())) * 1024 * 1024)  # MiB
        except ValueError:
            return None
    return len(free), tuple(free)


def gpus(proc_gpus: Path = PROC_GPUS, dev: Path = DEV) -> tuple[int | None, tuple[int, ...] | None, str]:
    """(count, free bytes per GPU or None, how it was found). Count None = a driver is present but the GPUs
    could not be counted."""
    smi = _nvidia_smi()
    if smi is not None:
        return smi[0], smi[1], "nvidia-smi"
    try:
        listed = [p for p in proc_gpus.iterdir() if p.is_dir()]
        return len(listed), None, str(proc_gpus)
    except OSError:  # no /proc/driver/nvidia/gpus: try the device nodes below
        pass
    try:
        nodes = [p for p in dev.iterdir() if re.fullmatch(r"nvidia\d+", p.name)]
    except OSError:
        nodes = []
    if nodes:
        return len(nodes), None, f"{dev}/nvidia*"
    if shutil.which("nvidia-smi"):
        return None, None, "nvidia-smi failed"
    return 0, None, "no NVIDIA driver"


def probe() -> Machine:
    """Ask the host now (nvidia-smi may take a second: call it off the UI thread)."""
    count, free, source = gpus()
    return Machine(cpu_cores=cpu_cores(), ram_available=ram_available(), gpus=count, gpu_free=free,
                   gpu_source=source)


def installed(module: str) -> bool:
    """Is ``module`` importable? (find_spec: nothing is imported.)"""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
