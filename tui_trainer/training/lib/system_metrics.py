"""System metrics: each rank samples its own figures on a background thread; rank 0 emits ``system`` events.

Per rank: process RSS and CPU %, the host's available/total memory, and on CUDA the GPU's utilisation, memory,
power and temperature (NVML via ``nvidia-ml-py``, optional: absent or failing ⇒ null) plus
``torch.cuda.max_memory_allocated``.

How rank 0 gets the other ranks' figures: they ride in the all-reduce the step loop already does every step
(``step.agree_with_figures``). Each rank writes its latest sample into its own slot of a
``world × FIELDS`` vector of zeros; the SUM leaves every rank's figures in place. Why not a collective of our
own: a sampler thread must never issue one (collectives on a group are ordered per process; a thread racing
the training loop's all-reduces deadlocks or corrupts them), and an extra collective from the loop adds a
sync point per step.
Why not files in the run dir: nodes of a multi-node run need not share a filesystem. The piggyback costs
``world × FIELDS`` doubles in a message that is sent anyway — nothing waits on it that did not wait already.

Nulls travel as NaN (NaN + 0 = NaN in the SUM). Sampling reads /proc (Linux); elsewhere those figures are
null.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any, Callable

# One rank's slot, in this order. "sample_time" (unix seconds) gives age_s; the rest map to event fields.
FIELDS = ("sample_time", "node", "rss_bytes", "cpu_percent", "host_mem_available_bytes",
          "host_mem_total_bytes", "gpu_index", "gpu_util_percent", "gpu_mem_used_bytes",
          "gpu_mem_total_bytes", "gpu_power_watts", "gpu_temperature_c", "torch_max_memory_allocated_bytes")
INT_FIELDS = {"node", "rss_bytes", "host_mem_available_bytes", "host_mem_total_bytes", "gpu_index",
              "gpu_mem_used_bytes", "gpu_mem_total_bytes", "torch_max_memory_allocated_bytes"}
GPU_FIELDS = ("gpu_index", "gpu_util_percent", "gpu_mem_used_bytes", "gpu_mem_total_bytes", "gpu_power_watts",
              "gpu_temperature_c")
NAN = float("nan")
MIN_CPU_WINDOW_S = 0.1


# --------------------------------------------------------------------------------------------- process
def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4096


def process_rss_bytes() -> int | None:
    """Resident set size of this process now (not the peak), from /proc/self/statm."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _page_size()
    except (OSError, ValueError, IndexError):
        return None


def host_memory() -> tuple[int | None, int | None]:
    """(MemAvailable, MemTotal) of this machine in bytes, from /proc/meminfo."""
    found: dict[str, int] = {}
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                name, _, rest = line.partition(b":")
                if name in (b"MemAvailable", b"MemTotal"):
                    found[name.decode()] = int(rest.split()[0]) * 1024  # the file says kB, meaning KiB
    except (OSError, ValueError, IndexError):
        pass
    return found.get("MemAvailable"), found.get("MemTotal")


class CpuMeter:
    """Process CPU % (all threads; 100 = one core) between consecutive calls to ``percent``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.last = (self._cpu_seconds(), clock())

    @staticmethod
    def _cpu_seconds() -> float:
        t = os.times()
        return t.user + t.system

    def percent(self) -> float | None:
        cpu, now = self._cpu_seconds(), self.clock()
        cpu0, t0 = self.last
        if now - t0 < MIN_CPU_WINDOW_S:  # os.times() ticks in 10 ms: a shorter window reads as 0 % or 200 %
            return None  # and the window keeps growing from the same start
        self.last = (cpu, now)
        return 100.0 * (cpu - cpu0) / (now - t0)


# ------------------------------------------------------------------------------------------------- GPU
class NvmlGpu:
    """One GPU's figures through an NVML module (``pynvml`` from nvidia-ml-py, or a stand-in in tests).

    Found by UUID (right under CUDA_VISIBLE_DEVICES), else by index. Every figure is read on its own: a call
    the GPU or driver does not support (power on some boards) leaves that figure null and the others intact.
    """

    def __init__(self, nvml: Any, *, uuid: str | None = None, index: int | None = None):
        self.nvml, self.handle, self.index = nvml, None, None
        try:
            nvml.nvmlInit()
            if uuid:
                self.handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
            elif index is not None:
                self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
            if self.handle is not None:
                self.index = int(nvml.nvmlDeviceGetIndex(self.handle))
        except Exception:  # noqa: BLE001 - NVML errors, no driver library: no GPU figures, never a crash
            self.handle = None

    def read(self) -> dict[str, float | int | None]:
        figures: dict[str, float | int | None] = dict.fromkeys(GPU_FIELDS)
        if self.handle is None:
            return figures
        nvml, h = self.nvml, self.handle
        figures["gpu_index"] = self.index
        figures["gpu_util_percent"] = self._try(lambda: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu))
        memory = self._try(lambda: nvml.nvmlDeviceGetMemoryInfo(h))
        if memory is not None:
            figures["gpu_mem_used_bytes"] = int(memory.used)
            figures["gpu_mem_total_bytes"] = int(memory.total)
        figures["gpu_power_watts"] = self._try(lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)  # mW
        figures["gpu_temperature_c"] = self._try(
            lambda: float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)))
        return figures

    @staticmethod
    def _try(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except Exception:  # noqa: BLE001 - one unsupported query must not hide the others
            return None


def load_nvml() -> Any:
    """The ``pynvml`` module of nvidia-ml-py, or None when it is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def open_gpu(device, nvml: Any = None) -> NvmlGpu | None:
    """The NVML view of a torch CUDA device (None for other devices or without nvidia-ml-py)."""
    if getattr(device, "type", None) != "cuda":
        return None
    nvml = nvml if nvml is not None else load_nvml()
    if nvml is None:
        return None
    import torch
    uuid = None
    try:
        raw = str(torch.cuda.get_device_properties(device).uuid)
        uuid = raw if raw.startswith(("GPU-", "MIG-")) else f"GPU-{raw}"
    except Exception:  # noqa: BLE001 - older torch without .uuid: fall back to the index
        pass
    index = device.index if "CUDA_VISIBLE_DEVICES" not in os.environ else None
    return NvmlGpu(nvml, uuid=uuid, index=index if index is not None or uuid else 0)


# -------------------------------------------------------------------------------------------- sampling
def sample_figures(cpu: CpuMeter, gpu: NvmlGpu | None, max_allocated: Callable[[], int] | None,
                   node: int) -> dict[str, float | int | None]:
    """One rank's figures now, keyed by FIELDS."""
    available, total = host_memory()
    figures: dict[str, float | int | None] = {
        "sample_time": time.time(), "node": node, "rss_bytes": process_rss_bytes(),
        "cpu_percent": cpu.percent(),
        "host_mem_available_bytes": available, "host_mem_total_bytes": total,
        **(gpu.read() if gpu else dict.fromkeys(GPU_FIELDS)), "torch_max_memory_allocated_bytes": None}
    if max_allocated is not None:
        try:
            figures["torch_max_memory_allocated_bytes"] = int(max_allocated())
        except Exception:  # noqa: BLE001 - a figure, not a reason to stop
            pass
    return figures


def encode_slot(figures: dict[str, Any]) -> list[float]:
    return [NAN if figures.get(name) is None else float(figures[name]) for name in FIELDS]


def decode_ranks(summed: list[float], world_size: int, now: float | None = None) -> list[dict[str, Any]]:
    """The ``ranks`` list of a system event from the all-reduced vector (NaN → null, counts back to ints)."""
    now = time.time() if now is None else now
    ranks = []
    width = len(FIELDS)
    for rank in range(world_size):
        slot = summed[rank * width:(rank + 1) * width]
        values = dict(zip(FIELDS, slot))
        record: dict[str, Any] = {"rank": rank}
        sampled = values.pop("sample_time")
        record["age_s"] = None if math.isnan(sampled) else round(max(0.0, now - sampled), 3)
        for name, value in values.items():
            if math.isnan(value) or math.isinf(value):
                record[name] = None
            else:
                record[name] = int(round(value)) if name in INT_FIELDS else round(value, 2)
        if record["node"] is None:
            record["node"] = 0
        ranks.append(record)
    return ranks


class SystemSampler:
    """A daemon thread sampling this rank twice per ``interval`` (so an emitted figure is at most half an
    interval plus one step old); ``slots()`` is all the loop calls.

    ``slots()`` returns a prebuilt ``world × FIELDS`` list with this rank's latest sample in its slot (a
    reference swap under the GIL: no lock, no waiting, no work on the training thread).
    """

    def __init__(self, interval: float, rank: int, world_size: int, *, device=None, node: int = 0,
                 nvml: Any = None):
        self.interval, self.rank, self.world_size, self.node = interval, rank, world_size, node
        self.cpu = CpuMeter()
        self.gpu = open_gpu(device, nvml) if device is not None else None
        self.max_allocated = None
        if getattr(device, "type", None) == "cuda":
            import torch
            self.max_allocated = lambda: torch.cuda.max_memory_allocated(device)
        self._slots = self._layout(encode_slot({"node": node}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"system-metrics-rank{rank}", daemon=True)

    def _layout(self, mine: list[float]) -> list[float]:
        width = len(FIELDS)
        vector = [0.0] * (self.world_size * width)
        vector[self.rank * width:(self.rank + 1) * width] = mine
        return vector

    def start(self) -> "SystemSampler":
        self._thread.start()
        return self

    def sample_now(self) -> dict[str, Any]:
        figures = sample_figures(self.cpu, self.gpu, self.max_allocated, self.node)
        self._slots = self._layout(encode_slot(figures))
        return figures

    def _run(self) -> None:
        while True:
            try:
                self.sample_now()
            except Exception:  # noqa: BLE001 - metrics must never take the run down; the last sample stays
                pass
            if self._stop.wait(self.interval / 2):
                return

    def slots(self) -> list[float]:
        return self._slots

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class SystemReporter:
    """Rank 0: turns the all-reduced slots into a ``system`` event every ``interval`` seconds."""

    def __init__(self, interval: float, world_size: int, clock: Callable[[], float] = time.monotonic):
        self.interval, self.world_size, self.clock = interval, world_size, clock
        self.last = clock()  # the first event one interval in: by then every rank has a full CPU window

    def due(self) -> bool:
        return self.clock() - self.last >= self.interval

    def payload(self, step: int, summed: list[float]) -> dict[str, Any]:
        self.last = self.clock()
        return {"step": step, "interval_s": self.interval, "ranks": decode_ranks(summed, self.world_size)}


class SystemMetrics:
    """What train.py holds: this rank's sampler, and on rank 0 the reporter. ``None``-safe to build:
    ``SystemMetrics.start(...)`` returns None when ``system.metrics_seconds`` is 0."""

    def __init__(self, sampler: SystemSampler, reporter: SystemReporter | None):
        self.sampler, self.reporter = sampler, reporter

    @classmethod
    def start(cls, interval: float, rank: int, world_size: int, device, *, master: bool):
        if interval <= 0:
            return None
        node = int(os.environ.get("GROUP_RANK", "0") or 0)
        sampler = SystemSampler(interval, rank, world_size, device=device, node=node).start()
        return cls(sampler, SystemReporter(interval, world_size) if master else None)

    def slots(self) -> list[float]:
        return self.sampler.slots()

    def report(self, events, step: int, summed: list[float]) -> None:
        if self.reporter is not None and self.reporter.due():
            events.emit("system", **self.reporter.payload(step, summed))

    def stop(self) -> None:
        self.sampler.stop()
