"""`gpt-console status` shows the newest system event: CPU/RSS per rank, host memory, GPU figures if any."""

from __future__ import annotations

import json

from tui_trainer.cli import main
from tui_trainer.runs import RunStore
from tui_trainer.runs.files import write_json, write_private
from tui_trainer.runs.system_view import last_system_event, system_lines

CPU_RANK = {"rank": 0, "node": 0, "age_s": 0.4, "rss_bytes": 512 << 20, "cpu_percent": 187.0,
            "host_mem_available_bytes": 20 << 30, "host_mem_total_bytes": 24 << 30, "gpu_index": None,
            "gpu_util_percent": None, "gpu_mem_used_bytes": None, "gpu_mem_total_bytes": None,
            "gpu_power_watts": None, "gpu_temperature_c": None, "torch_max_memory_allocated_bytes": None}
GPU_RANK = dict(CPU_RANK, rank=1, gpu_index=3, gpu_util_percent=97.0, gpu_mem_used_bytes=70 << 30,
                gpu_mem_total_bytes=80 << 30, gpu_power_watts=650.4, gpu_temperature_c=71.0,
                torch_max_memory_allocated_bytes=60 << 30)


def _write_run(tmp_path, events):
    store = RunStore(tmp_path)
    run = store.create("sys")
    write_private(run.config_file, "")
    write_json(run.launch_file, {"launch": 1, "events_offset": 0, "workers": []})
    with open(run.events_file, "w") as f:
        for i, (kind, payload) in enumerate(events):
            f.write(json.dumps({"v": 1, "seq": i, "t": 1000.0 + i, "type": kind, **payload}) + "\n")
    return run


def test_status_prints_the_newest_system_figures(tmp_path, capsys):
    run = _write_run(tmp_path, [
        ("system", {"step": 3, "interval_s": 10.0, "ranks": [dict(CPU_RANK, cpu_percent=5.0)]}),
        ("system", {"step": 7, "interval_s": 10.0, "ranks": [CPU_RANK, GPU_RANK]}),
        ("system", {"step": 9, "interval_s": 10.0, "ranks": [dict(CPU_RANK, rss_bytes="huge")]}),  # invalid
        ("run_end", {"status": "finished", "reason": "reached max_steps", "step": 9})])
    assert last_system_event(run.events_file)["step"] == 7
    main(["status", run.id, "--runs-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "system   at step 7" in out
    assert "node 0: host memory 20.0 GiB available of 24.0 GiB" in out
    assert "rank 0: CPU 187%, RSS 512.0 MiB" in out and "rank 0: CPU 187%, RSS 512.0 MiB |" not in out
    assert "rank 1: CPU 187%, RSS 512.0 MiB | GPU 3: util 97%, mem 70.0 GiB / 80.0 GiB, 650 W, 71 °C, " \
           "torch peak 60.0 GiB" in out


def test_status_without_system_events_prints_no_system_block(tmp_path, capsys):
    run = _write_run(tmp_path, [("run_end", {"status": "finished", "reason": "done", "step": 0})])
    main(["status", run.id, "--runs-root", str(tmp_path)])
    assert "system   at" not in capsys.readouterr().out


def test_null_figures_print_as_dashes():
    rank = dict(GPU_RANK, gpu_power_watts=None, gpu_util_percent=None, cpu_percent=None)
    lines = system_lines({"t": 10.0, "step": 1, "ranks": [rank]}, now=12.0)
    assert lines[0] == "system   at step 1, 2 s ago (1 rank(s))"
    assert "CPU -, RSS" in lines[2] and "util -," in lines[2] and ", -, 71 °C" in lines[2]
