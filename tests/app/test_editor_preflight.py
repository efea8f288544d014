"""Preflight: the editor says, before launch, when a config cannot run well on this machine (ranks against
GPUs or cores, memory per rank against free GPU memory or RAM, a missing optional package, no sbatch for
Slurm), and the machine is probed without torch."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from console_pilot import open_editor, run, text_of, wait_for

from tui_trainer.app import machine as machine_mod
from tui_trainer.app.console import GptConsole
from tui_trainer.app.derived import memory_per_rank
from tui_trainer.app.machine import Machine, gpus, installed, ram_available
from tui_trainer.app.preflight import machine_problems
from tui_trainer.training.lib.config import TrainingConfig, load_config

REPO = Path(__file__).resolve().parents[2]
GiB = 1024 ** 3
TWO_CORE_BOX = Machine(cpu_cores=2, ram_available=23 * GiB, gpus=0, gpu_free=None,
                       gpu_source="no NVIDIA driver")


def keys(problems) -> list[str]:
    return [p.key for p in problems]


def test_gpt2_124m_on_a_two_core_box_without_gpu_or_datasets():
    cfg = load_config(REPO / "configs" / "gpt2-124m.toml")
    problems = machine_problems(cfg, TWO_CORE_BOX, is_installed=lambda module: False)
    text = " | ".join(f"{p.key}: {p.reason} → {p.fix}" for p in problems)
    assert keys(problems) == ["data.source", "launch.nproc_per_node", "optim.micro_batch_size"], text
    assert "`datasets`" in text and ".[fineweb]" in text
    assert "8 ranks on 2 CPU cores" in text and "at most 2" in text
    assert "of RAM is available" in text


def test_a_config_that_fits_has_no_warnings_and_gpus_are_checked_per_rank():
    cfg = TrainingConfig()
    cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head, cfg.model.block_size = 2, 64, 2, 64
    cfg.optim.micro_batch_size, cfg.launch.nproc_per_node = 4, 1
    assert machine_problems(cfg, TWO_CORE_BOX, is_installed=lambda m: True) == []

    cfg.launch.nproc_per_node = 4
    four_gpus = Machine(cpu_cores=2, ram_available=1 * GiB, gpus=2, gpu_free=(80 * GiB, 10 * GiB),
                        gpu_source="nvidia-smi")
    problems = machine_problems(cfg, four_gpus, is_installed=lambda m: True)
    assert keys(problems) == ["launch.nproc_per_node"] and "2 GPUs" in problems[0].reason  # RAM not asked
    small_gpu = Machine(cpu_cores=2, ram_available=None, gpus=4, gpu_free=(memory_per_rank(cfg) - 1,) * 4,
                        gpu_source="nvidia-smi")
    assert keys(machine_problems(cfg, small_gpu, is_installed=lambda m: True)) == ["optim.micro_batch_size"]

    cfg.system.device = "cuda"
    assert keys(machine_problems(cfg, TWO_CORE_BOX, is_installed=lambda m: True)) == ["system.device"]
    unknown = Machine(cpu_cores=2, ram_available=None, gpus=None, gpu_free=None,
                      gpu_source="nvidia-smi failed")
    problems = machine_problems(cfg, unknown, is_installed=lambda m: True)
    assert keys(problems) == ["system.device"] and "unknown" in problems[0].reason


def test_slurm_checks_sbatch_not_this_hosts_hardware():
    cfg = load_config(REPO / "configs" / "gpt2-124m.toml")
    cfg.launch.backend = "slurm"
    problems = machine_problems(cfg, TWO_CORE_BOX, is_installed=lambda m: True,
                                sbatch_problem=lambda: "no `sbatch` on PATH")
    assert keys(problems) == ["launch.backend"]
    assert machine_problems(cfg, TWO_CORE_BOX, is_installed=lambda m: True, sbatch_problem=lambda: None) == []


def test_machine_probes_read_the_real_files(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n")
    assert ram_available(meminfo) == 20000000 * 1024
    assert ram_available(tmp_path / "absent") is None

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no nvidia-smi: the files decide
    proc = tmp_path / "proc-gpus"
    (proc / "0000:01:00.0").mkdir(parents=True)
    (proc / "0000:02:00.0").mkdir()
    dev = tmp_path / "dev"
    dev.mkdir()
    assert gpus(proc, dev)[:2] == (2, None)
    (dev / "nvidia0").touch()
    (dev / "nvidiactl").touch()
    assert gpus(tmp_path / "no-proc", dev) == (1, None, f"{dev}/nvidia*")
    assert gpus(tmp_path / "no-proc", tmp_path / "no-dev") == (0, None, "no NVIDIA driver")

    assert installed("json") and not installed("no_such_module_for_gpt_console")
    assert machine_mod.cpu_cores() == len(os.sched_getaffinity(0))


def test_the_editor_shows_machine_warnings_instead_of_valid(tmp_path):
    path = tmp_path / "gpt2-124m.toml"
    shutil.copy(REPO / "configs" / "gpt2-124m.toml", path)

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(160, 48)) as pilot:
            screen = await open_editor(pilot)
            await wait_for(pilot, lambda: screen._machine is not None, what="the machine probe")
            screen._set_machine(TWO_CORE_BOX)  # what the probe found on the 2-core, 23 GB box of the issue
            await pilot.pause()
            problems = text_of(screen.query_one("#problems"))
            assert "✓ valid" not in problems
            assert "8 ranks on 2 CPU cores" in problems and "of RAM is available" in problems
            assert "validator accepts this config, but it would not run well here" in problems
            await pilot.press("f5")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="launch dialog")
            assert "Launch despite" in app.screen.title_text and "warnings" in app.screen.title_text

    run(scenario)
