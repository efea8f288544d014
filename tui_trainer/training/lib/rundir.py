"""What the trainer reads and writes in its run directory besides events: which checkpoint to resume, and the
resolved config beside the run. Torch-free."""

from __future__ import annotations

import os
from pathlib import Path

from tui_trainer.channel.layout import CONFIG_FILE
from tui_trainer.channel.private_files import make_private_dir, write_private_text

from .checkpoint import find_latest_checkpoint
from .config import ConfigError, config_from_dict, parse_toml_text, read_toml
from .errors import UserError


class ResumeConflict(UserError, RuntimeError):
    """A fresh start was asked for in a run directory that already has checkpoints."""


def checkpoint_to_resume(root: Path, resume: bool) -> Path | None:
    """The newest complete checkpoint under ``root`` when resuming (None: start fresh). Starting fresh over
    existing checkpoints is refused, never silently overwritten."""
    latest = find_latest_checkpoint(root)
    if resume:
        return latest
    if latest is not None or any(root.glob("step-*")):
        raise ResumeConflict(
            f"{root} already holds checkpoints (newest: {latest.name if latest else 'an incomplete one'}) and "
            "this run would start fresh over them. To continue that run, pass --resume or set "
            "checkpoint.resume = \"auto\"; to start a new one, choose another --run-dir.")
    return None


def save_resolved_config(run_dir: Path, text: str) -> str | None:
    """Write the resolved config to ``<run_dir>/config.toml``. An existing file that says something else (a
    user's file, an earlier run's) is kept as ``config.toml.N``; returns that name, or None."""
    make_private_dir(run_dir)
    path = run_dir / CONFIG_FILE
    kept = None
    if path.exists():
        try:
            if config_from_dict(read_toml(path)) == config_from_dict(parse_toml_text(text)):
                return None
        except ConfigError:
            pass
        n = 1
        while path.with_name(f"{CONFIG_FILE}.{n}").exists():
            n += 1
        kept = f"{CONFIG_FILE}.{n}"
        path.rename(path.with_name(kept))
    tmp = path.with_name(f".{CONFIG_FILE}.tmp")
    write_private_text(tmp, text)
    os.replace(tmp, path)
    return kept
