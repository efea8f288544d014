"""System metrics: real CPU/memory figures of this process, NVML through a stand-in module at the GPU call
boundary only, the slot encoding that carries figures through the step all-reduce, and a real 2-rank run."""

from __future__ import annotations

import math
import os
import sys
import time
import types

import pytest
import torch

from tui_trainer.channel.schema import validate_event
from tui_trainer.training.lib import system_metrics as sm
from tui_trainer.training.lib.step import agree, agree_with_figures

from . import harness as H

LINUX = sys.platform.startswith("linux")


def _vm_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -------------------------------------------------------------------------------------------- real figures
@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_rss_and_host_memory_are_this_machines_real_figures():
    block = bytearray(64 << 20)  # touch 64 MiB: RSS must grow by about that much
    for i in range(0, len(block), 4096):
        block[i] = 1
    rss = sm.process_rss_bytes()
    assert rss is not None and abs(rss - _vm_rss_bytes()) < 8 << 20
    del block
    available, total = sm.host_memory()
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert total is not None and abs(total - pages) < 0.02 * pages
    assert available is not None and 0 < available <= total


def test_cpu_percent_follows_the_work_done():
    """Busy until this process has used 0.3 s of CPU: the meter must report that CPU over that wall time (the
    kernel's process clock as the reference), whatever share of a core the loaded machine gave us."""
    meter = sm.CpuMeter()
    assert meter.percent() is None  # a window under 0.1 s says nothing reliable
    time.sleep(0.3)
    idle = meter.percent()
    wall0, cpu0 = time.monotonic(), time.process_time()
    x = 0
    while time.process_time() - cpu0 < 0.3:  # one thread busy
        x += 1
    busy = meter.percent()
    reference = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
    assert idle is not None and idle < 30
    assert busy is not None and busy == pytest.approx(reference, abs=max(10.0, 0.15 * reference))
    assert busy > idle


# ---------------------------------------------------------------------------------------------- fake NVML
class FakeNvmlError(Exception):
    """What the fake NVML raises where real NVML would (nvmlDeviceGet* on a lost GPU)."""


def fake_nvml(*, fail: tuple[str, ...] = (), uuids=("GPU-aaaa", "GPU-bbbb")):
    """An NVML module with pynvml's function names: two GPUs with fixed figures; names in ``fail`` raise."""
    calls = []

    def call(name, result):
        def fn(*args):
            calls.append((name, args))
            if name in fail:
                raise FakeNvmlError(name)
            return result(*args) if callable(result) else result
        return fn

    gpus = {uuid: i for i, uuid in enumerate(uuids)}
    mod = types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, NVMLError=FakeNvmlError, calls=calls,
        nvmlInit=call("nvmlInit", None),
        nvmlDeviceGetHandleByUUID=call("nvmlDeviceGetHandleByUUID", lambda u: ("handle", gpus[u])),
        nvmlDeviceGetHandleByIndex=call("nvmlDeviceGetHandleByIndex", lambda i: ("handle", i)),
        nvmlDeviceGetIndex=call("nvmlDeviceGetIndex", lambda h: h[1]),
        nvmlDeviceGetUtilizationRates=call("nvmlDeviceGetUtilizationRates",
                                           lambda h: types.SimpleNamespace(gpu=87 + h[1], memory=40)),
        nvmlDeviceGetMemoryInfo=call("nvmlDeviceGetMemoryInfo",
                                     lambda h: types.SimpleNamespace(used=(30 + h[1]) << 30, total=80 << 30,
                                                                     free=(50 - h[1]) << 30)),
        nvmlDeviceGetPowerUsage=call("nvmlDeviceGetPowerUsage", lambda h: 412_345 + h[1]),  # milliwatts
        nvmlDeviceGetTemperature=call("nvmlDeviceGetTemperature", lambda h, kind: 61 + h[1]),
    )
    return mod


def test_nvml_figures_are_read_for_the_gpu_named_by_uuid():
    nvml = fake_nvml()
    figures = sm.NvmlGpu(nvml, uuid="GPU-bbbb").read()
    assert figures == {"gpu_index": 1, "gpu_util_percent": 88.0, "gpu_mem_used_bytes": 31 << 30,
                       "gpu_mem_total_bytes": 80 << 30, "gpu_power_watts": 412.346, "gpu_temperature_c": 62.0}
    assert ("nvmlDeviceGetHandleByUUID", ("GPU-bbbb",)) in nvml.calls


def test_a_failing_nvml_query_nulls_only_its_figure():
    figures = sm.NvmlGpu(fake_nvml(fail=("nvmlDeviceGetPowerUsage",)), index=0).read()
    assert figures["gpu_power_watts"] is None
    assert figures["gpu_util_percent"] == 87.0 and figures["gpu_temperature_c"] == 61.0


def test_nvml_that_cannot_start_gives_nulls_not_a_crash():
    gpu = sm.NvmlGpu(fake_nvml(fail=("nvmlInit",)), uuid="GPU-aaaa")
    assert gpu.read() == dict.fromkeys(sm.GPU_FIELDS)
    unknown = sm.NvmlGpu(fake_nvml(), uuid="GPU-zzzz")  # the lookup raises, like NVML_ERROR_NOT_FOUND
    assert unknown.read() == dict.fromkeys(sm.GPU_FIELDS)


def test_without_nvidia_ml_py_there_is_no_gpu_reader(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert sm.load_nvml() is None
    assert sm.open_gpu(torch.device("cpu")) is None


def test_open_gpu_finds_the_cuda_device_by_uuid(monkeypatch):
    """The torch side of the boundary: the device's UUID (as torch reports it) selects the NVML handle."""
    props = types.SimpleNamespace(uuid="bbbb")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    gpu = sm.open_gpu(torch.device("cuda", 1), nvml=fake_nvml())
    assert gpu is not None and gpu.read()["gpu_index"] == 1
    assert sm.open_gpu(torch.device("cpu"), nvml=fake_nvml()) is None


# ------------------------------------------------------------------------------------- slots and events
def test_rank_slots_summed_like_the_all_reduce_decode_to_a_valid_event():
    cpu = sm.CpuMeter()
    time.sleep(0.15)
    rank0 = sm.sample_figures(cpu, None, None, node=0)
    rank1 = sm.sample_figures(sm.CpuMeter(), sm.NvmlGpu(fake_nvml(), uuid="GPU-aaaa"), lambda: 123_456_789,
                              node=1)
    width = len(sm.FIELDS)
    vectors = [[0.0] * (2 * width), [0.0] * (2 * width)]
    vectors[0][:width] = sm.encode_slot(rank0)
    vectors[1][width:] = sm.encode_slot(rank1)
    summed = [a + b for a, b in zip(*vectors)]  # what a SUM all-reduce leaves on every rank
    ranks = sm.decode_ranks(summed, 2, now=rank1["sample_time"] + 1.0)
    assert [r["rank"] for r in ranks] == [0, 1] and [r["node"] for r in ranks] == [0, 1]
    assert ranks[0]["rss_bytes"] == rank0["rss_bytes"] and ranks[0]["gpu_util_percent"] is None
    assert ranks[0]["cpu_percent"] is not None
    assert ranks[1]["cpu_percent"] is None  # its meter had no window yet: null, not a made-up 0
    assert ranks[1]["gpu_mem_used_bytes"] == 30 << 30
    assert ranks[1]["torch_max_memory_allocated_bytes"] == 123456789
    assert ranks[1]["age_s"] == pytest.approx(1.0, abs=0.01)
    event = {"v": 1, "seq": 0, "t": time.time(), "type": "system", "step": 5, "interval_s": 10.0,
             "ranks": ranks}
    assert validate_event(event) == []
    broken = dict(event, ranks=[dict(ranks[0], rss_bytes="big"), ranks[1]])
    assert validate_event(broken) != []
    assert validate_event(dict(event, ranks=[ranks[1], ranks[0]])) != []  # rank order is part of the format


def test_a_rank_without_a_sample_yet_reports_nulls():
    sampler = sm.SystemSampler(10.0, rank=1, world_size=2)  # not started: nothing sampled
    ranks = sm.decode_ranks(sampler.slots(), 2)
    assert ranks[1]["age_s"] is None and ranks[1]["rss_bytes"] is None
    assert ranks[0]["rss_bytes"] == 0  # rank 1 alone contributes zeros to other slots


def test_agree_carries_the_figures_and_keeps_its_results():
    loss, norm = torch.tensor(2.5), torch.tensor(0.75)
    figures = [1.0, math.nan, 3.0]
    got = agree_with_figures(loss, norm, [False, True], figures, world_size=1, distributed=False)
    assert got[:3] == (2.5, 0.75, [False, True]) and got[3][0] == 1.0 and math.isnan(got[3][1])
    assert agree(loss, norm, [True], world_size=1, distributed=False) == (2.5, 0.75, [True])


def test_the_sampler_thread_samples_and_stops():
    sampler = sm.SystemSampler(0.1, rank=0, world_size=1).start()
    try:
        deadline = time.monotonic() + 5
        while math.isnan(sampler.slots()[sm.FIELDS.index("cpu_percent")]) and time.monotonic() < deadline:
            time.sleep(0.02)
        ranks = sm.decode_ranks(sampler.slots(), 1)
        assert ranks[0]["cpu_percent"] is not None and ranks[0]["age_s"] < 1.0
    finally:
        sampler.stop()
    assert not sampler._thread.is_alive()


def test_the_reporter_emits_once_per_interval():
    now = [100.0]
    reporter = sm.SystemReporter(10.0, 1, clock=lambda: now[0])
    assert not reporter.due()  # the first event comes one interval in
    now[0] += 10.0
    assert reporter.due()
    reporter.payload(3, sm.encode_slot({"sample_time": time.time()}))
    assert not reporter.due()
    now[0] += 9.9
    assert not reporter.due()


# --------------------------------------------------------------------------------------------- real run
@pytest.mark.slow
def test_a_two_rank_run_reports_both_ranks_real_figures(tmp_path):
    corpus = H.write_corpus(tmp_path)
    config = H.write_config(tmp_path, corpus, tmp_path / "shards")
    run_dir = tmp_path / "run"
    r = H.run_trainer(config, run_dir, "system.metrics_seconds=0.2", "schedule.max_steps=24", nproc=2,
                      timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    events = H.read_events(run_dir)
    system = H.of_type(events, "system")
    assert len(system) >= 2
    for event in system:
        assert validate_event(event) == [], validate_event(event)
        assert [rank["rank"] for rank in event["ranks"]] == [0, 1]
    last = system[-1]["ranks"]
    for rank in last:
        assert rank["rss_bytes"] > 50 << 20 and rank["cpu_percent"] is not None and rank["age_s"] < 5
        assert rank["host_mem_total_bytes"] > rank["host_mem_available_bytes"] > 0
        assert rank["gpu_util_percent"] is None and rank["torch_max_memory_allocated_bytes"] is None
    assert last[0]["rss_bytes"] != last[1]["rss_bytes"]  # two processes' own figures, not one copied


@pytest.mark.slow
def test_metrics_off_means_no_system_events(tmp_path):
    corpus = H.write_corpus(tmp_path)
    config = H.write_config(tmp_path, corpus, tmp_path / "shards")
    r = H.run_trainer(config, tmp_path / "run", "system.metrics_seconds=0", "schedule.max_steps=4")
    assert r.returncode == 0, r.stderr[-3000:]
    events = H.read_events(tmp_path / "run")
    assert H.of_type(events, "step") and not H.of_type(events, "system")
