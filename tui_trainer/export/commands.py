"""The ``gpt-console export RUN --hf DIR [--step N]`` and ``--tensorboard DIR`` verbs (cli.py wires them).

Each imports its heavy dependencies only here, when asked: the console process never imports torch, and a
missing optional package is one message naming the package to install.
"""

from __future__ import annotations

import sys

from tui_trainer.export.output_dir import ExportError

EXIT_OK, EXIT_FAILED = 0, 1
INSTALL_HINT = {"safetensors": "pip install 'tui_trainer[hf]' (or: pip install safetensors)",
                "tensorboard": "pip install 'tui_trainer[tensorboard]' (or: pip install tensorboard)"}


def export_command(run, *, hf: str | None = None, tensorboard: str | None = None,
                   step: int | None = None, output: str | None = None) -> int:
    try:
        if output is not None:
            raise ExportError("-o/--output names the file of a --csv export; --hf and --tensorboard write "
                              "into the directory they name")
        if hf is not None:
            return _export_hf(run, hf, step)
        if step is not None:
            raise ExportError("--step picks the checkpoint of an --hf export; the other exports take every "
                              "step")
        return _export_tensorboard(run, tensorboard)
    except ExportError as e:
        print(f"gpt-console: {e}", file=sys.stderr)
        return EXIT_FAILED
    except ImportError as e:
        package = next((p for p in INSTALL_HINT if p in str(e)), None)
        hint = INSTALL_HINT.get(package or "", "install the project's optional extras")
        print(f"gpt-console: this export needs a package that is not installed ({e}); {hint}",
              file=sys.stderr)
        return EXIT_FAILED


def _export_hf(run, out: str, step: int | None) -> int:
    from tui_trainer.export.hf import export_hf, find_checkpoint
    checkpoint = find_checkpoint(run.checkpoints(), step)
    print(f"exporting {checkpoint.name} of {run.id} ...", file=sys.stderr, flush=True)
    path = export_hf(checkpoint, out, name=run.id, events=run.follower())
    print(f"wrote a Hugging Face GPT-2 to {path} — GPT2LMHeadModel.from_pretrained(\"{path}\") loads it")
    return EXIT_OK


def _export_tensorboard(run, out: str | None) -> int:
    from tui_trainer.export.tensorboard import export_tensorboard
    path, points, rounds = export_tensorboard(run.follower(), out or "")
    print(f"wrote {points} scalar points and {rounds} sample rounds to {path} — "
          f"`tensorboard --logdir {path}`")
    return EXIT_OK
