"""The modular trainer's command line (the one-file twin declares the same flags itself)."""

from __future__ import annotations

import argparse

from tui_trainer.channel.layout import ENV_EVENTS, ENV_RUN_DIR


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tui_trainer.training.train",
                                description="Train a GPT-2, alone or under torchrun.")
    p.add_argument("--config", required=True, help="TOML config (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a key")
    p.add_argument("--run-dir", help=f"run directory (default ${ENV_RUN_DIR}, else runs/manual-<config stem>)")
    p.add_argument("--events", help=f"event log (default ${ENV_EVENTS}, else <run-dir>/events.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run dir")
    p.add_argument("--profile", action="store_true", help="profile steps 2-4 into <run-dir>/profile/")
    return p.parse_args(argv)
