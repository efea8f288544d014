"""The training library's public API, loaded lazily.

``from tui_trainer.training.lib import GPT`` imports torch; ``from tui_trainer.training.lib.config import ...``
does not. Names resolve on first access (PEP 562), so the console can import the config module through this
package without paying for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # config (stdlib only)
    "TrainingConfig": "config", "ConfigError": "config", "ConfigProblem": "config", "load_config": "config",
    "config_from_dict": "config", "config_to_dict": "config", "config_to_toml": "config",
    "config_schema": "config", "grad_accum_steps": "config", "parameter_count": "config",
    "flops_per_token": "config", "derived_figures": "config",
    # model and training mechanics
    "GPT": "model", "lm_loss": "model",
    "configure_optimizer": "optim",
    "get_lr": "scheduling",
    "resolve_dtype": "precision", "make_autocast": "precision", "configure_precision": "precision",
    "cpu_has_native_bf16": "precision",
    "DistContext": "distributed", "setup_distributed": "distributed", "teardown_distributed": "distributed",
    "wrap_ddp": "distributed", "barrier": "distributed", "resolve_device": "distributed",
    "wrap_for_training": "distributed",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "gather_rng_states": "checkpoint",
    "capture_rng_state": "checkpoint", "restore_rng_state": "checkpoint",
    "find_latest_checkpoint": "checkpoint_dirs", "list_checkpoints": "checkpoint_dirs",
    "checkpoint_to_resume": "rundir", "save_resolved_config": "rundir", "ResumeConflict": "rundir",
    "train_step": "step", "agree": "step",
    "StopFlag": "signals", "install_stop_handlers": "signals", "set_parent_death_signal": "signals",
    "peak_flops": "metrics", "compute_mfu": "metrics", "device_name": "metrics",
    # data and evaluation (the data engineer's modules)
    "build_dataloaders": "data", "ensure_shards": "shards",
    "get_tokenizer": "tokenizer", "TokenizerUnavailable": "tokenizer",
    "evaluate_loss": "evaluation", "run_hellaswag_eval": "evaluation", "generate_samples": "evaluation",
    "load_hellaswag": "hellaswag",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
