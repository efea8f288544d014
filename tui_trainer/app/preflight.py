"""Preflight: will this config run on this machine? Ranks against GPUs (or CPU cores), the estimated memory
per rank against free GPU memory (or RAM), optional packages the data source needs, and, for Slurm, whether
this host can submit at all. The validator cannot know any of it; the editor warns before launch.
"""

from __future__ import annotations

from typing import Callable

from tui_trainer.app import format as fmt
from tui_trainer.app.derived import memory_per_rank
from tui_trainer.app.machine import Machine, installed
from tui_trainer.training.lib.config import ConfigProblem, TrainingConfig

# Packages a data source needs beyond the core install: (module, extra that installs it).
SOURCE_EXTRAS = {"fineweb-edu": ("datasets", "fineweb")}


def _sbatch_problem() -> str | None:
    """Why this host cannot submit a Slurm job (None when it can). The Slurm backend owns the wording."""
    from tui_trainer.runs import slurm
    return None if slurm.sbatch_available() else slurm.NO_SBATCH


def machine_problems(cfg: TrainingConfig, machine: Machine | None, *,
                     is_installed: Callable[[str], bool] = installed,
                     sbatch_problem: Callable[[], str | None] = _sbatch_problem) -> list[ConfigProblem]:
    """Warnings for running ``cfg`` here. ``machine`` None (not probed yet) skips the hardware checks."""
    out = []
    source = cfg.data.source
    if source in SOURCE_EXTRAS and not cfg.data.shard_dir:
        module, extra = SOURCE_EXTRAS[source]
        if not is_installed(module):
            out.append(ConfigProblem("data.source", f"'{source}' needs the `{module}` package, which is "
                                     "not installed here", f"pip install -e '.[{extra}]' (or point "
                                     "data.shard_dir at shards prepared elsewhere)"))
    if cfg.launch.backend == "slurm":
        # The ranks run on the cluster's nodes, not here: this host's GPUs and memory say nothing about them.
        why = sbatch_problem()
        if why:
            out.append(ConfigProblem("launch.backend", why, "run the console on the cluster's login node"))
        return out
    if machine is None:
        return out
    return out + _hardware_problems(cfg, machine)


def _hardware_problems(cfg: TrainingConfig, machine: Machine) -> list[ConfigProblem]:
    out = []
    ranks = cfg.launch.nproc_per_node  # this machine's share; other nodes are checked where they start
    device = cfg.system.device
    per_rank = memory_per_rank(cfg)
    if device.startswith(("mps", "xpu")):
        return out  # not NVIDIA: nothing here can count those devices or their memory
    wants_gpu = device.startswith("cuda")
    uses_gpu = wants_gpu or (device == "auto" and bool(machine.gpus))
    if wants_gpu and machine.gpus == 0:
        out.append(ConfigProblem("system.device", f"'{device}' but this machine has no NVIDIA GPU "
                                 f"({machine.gpu_source})", "set system.device = \"auto\" or \"cpu\""))
        return out
    if uses_gpu and machine.gpus:
        if ranks > machine.gpus:
            out.append(ConfigProblem("launch.nproc_per_node", f"{ranks} ranks but this machine has "
                                     f"{machine.gpus} GPU{'s' if machine.gpus != 1 else ''}",
                                     f"set launch.nproc_per_node = {machine.gpus} (one rank per GPU)"))
        if machine.gpu_free:
            free = min(machine.gpu_free)
            if per_rank > free:
                out.append(ConfigProblem("optim.micro_batch_size", f"≈ {fmt.nbytes(per_rank)} per rank, but "
                                         f"the fullest GPU has {fmt.nbytes(free)} free", _smaller_batch(cfg)))
        return out
    if uses_gpu or device == "auto" and machine.gpus is None:
        out.append(ConfigProblem("system.device", f"whether this machine has a GPU is unknown "
                                 f"({machine.gpu_source})", "check nvidia-smi; memory is not checked"))
        return out
    # CPU ranks.
    cores = machine.cpu_cores
    if ranks > cores:
        where = "no GPU found" if device == "auto" else "device cpu"
        out.append(ConfigProblem("launch.nproc_per_node", f"{ranks} ranks on {cores} CPU core"
                                 f"{'s' if cores != 1 else ''} ({where}): they would share cores and crawl",
                                 f"set launch.nproc_per_node to at most {cores}"))
    if machine.ram_available is not None and per_rank * ranks > machine.ram_available:
        total, ram = fmt.nbytes(per_rank * ranks), fmt.nbytes(machine.ram_available)
        out.append(ConfigProblem("optim.micro_batch_size", f"≈ {fmt.nbytes(per_rank)} per rank × {ranks} rank"
                                 f"{'s' if ranks != 1 else ''} = {total}, but {ram} of RAM is available",
                                 _smaller_batch(cfg)))
    return out


def _smaller_batch(cfg: TrainingConfig) -> str:
    if cfg.optim.micro_batch_size > 1:
        return (f"lower optim.micro_batch_size (now {cfg.optim.micro_batch_size}; gradient accumulation "
                "keeps the step's tokens), or fewer ranks / a smaller model")
    return "use fewer ranks, a shorter block_size or a smaller model"
