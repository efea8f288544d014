"""Checkpoints: ``<run_dir>/checkpoints/step-NNNNNNNN/``, written under a temp name and renamed into place.

A checkpoint directory holds
  checkpoint.pt  torch.save of one plain dict (loadable with ``torch.load(..., weights_only=True)``):
      "format"      CHECKPOINT_FORMAT (1)
      "trainer"     "train" or "onefile" — either trainer resumes the other's checkpoints
      "step"        optimizer steps completed; training resumes with this 0-based step
      "tokens"      tokens trained so far, all ranks
      "model"       the raw GPT's state_dict (Hugging Face GPT-2 names; tied wte/lm_head both present)
      "optimizer"   AdamW state_dict
      "data"        the training loader's state_dict (one global position, the same on every rank)
      "rng"         list indexed by rank of {"python", "numpy", "torch", "cuda"} generator states
      "world_size"  ranks that wrote it
      "config"      the resolved TrainingConfig as a dict of sections
      "evals_done"  True when this step's scheduled val/HellaSwag/samples ran before the save (a resumed run
                    then does not repeat them); False for a stop, which saves before they run
  config.toml    the same config, human-readable
  meta.json      {"format", "step", "tokens", "time"}: written last, so its presence marks a complete checkpoint

Step N means "N steps done": ``step-00000100`` resumes at step index 100. Pure file I/O (no collectives):
gather the RNG states of all ranks first (``gather_rng_states``), then call ``save_checkpoint`` on rank 0.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tui_trainer.channel.diskfull import DiskFull, free_bytes, is_disk_full
from tui_trainer.channel.private_files import make_private_dir, open_private

from .checkpoint_dirs import (CHECKPOINT_FILE, CONFIG_FILE, META_FILE, TMP_PREFIX, checkpoint_dir_name,  # noqa: F401
                              find_latest_checkpoint, is_complete, list_checkpoints, prune_checkpoints)

CHECKPOINT_FORMAT = 1


# ------------------------------------------------------------------------------------------------ RNG
def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """This process's generator states, as plain Python/tensor values (no numpy arrays: weights_only loads)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng_states(device: torch.device) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (a collective when distributed: call it on all ranks)."""
    mine = capture_rng_state(device)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [mine]
    states: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(states, mine)
    return states


# ---------------------------------------------------------------------------------------------- save
def save_checkpoint(root: str | os.PathLike, step: int, *, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, data_state: dict[str, Any], rng: list[dict[str, Any]],
                    config: dict[str, Any], config_toml: str, tokens: int, evals_done: bool,
                    trainer: str = "train", keep_last: int = 0) -> Path:
    """Write checkpoint ``step`` under ``root`` (the run's checkpoints/ dir) atomically; prune to keep_last.

    If a complete checkpoint for this step already exists (e.g. a stop right after a scheduled save), it is
    the same state and is kept as is. A write that fails leaves nothing behind (its temp dir is removed, the
    earlier checkpoints are untouched); out of space, it raises DiskFull with the room left and needed.
    """
    root = Path(root)
    final = root / checkpoint_dir_name(step)
    if is_complete(final):
        return final
    tmp = root / f"{TMP_PREFIX}{checkpoint_dir_name(step)}-{os.getpid()}"
    payload = {
        "format": CHECKPOINT_FORMAT, "trainer": trainer, "step": step, "tokens": tokens,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "data": data_state,
        "rng": rng, "world_size": len(rng), "config": config, "evals_done": evals_done,
    }
    meta = {"format": CHECKPOINT_FORMAT, "step": step, "tokens": tokens, "time": time.time()}
    try:
        make_private_dir(root)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        _write_synced(tmp / CHECKPOINT_FILE, lambda f: torch.save(payload, f))
        _write_synced(tmp / CONFIG_FILE, lambda f: f.write(config_toml.encode("utf-8")))
        _write_synced(tmp / META_FILE, lambda f: f.write(json.dumps(meta).encode("utf-8")))
    except BaseException as e:  # a kill (KeyboardInterrupt) too: a half-written temp dir must not fill the disk
        shutil.rmtree(tmp, ignore_errors=True)
        if _out_of_space(e, root, payload):
            raise DiskFull(root, payload_bytes(payload)) from None
        raise
    if final.exists():  # an incomplete leftover with the same name (crash between rmtree and rename)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    if keep_last > 0:
        prune_checkpoints(root, keep_last)
    return final


def _out_of_space(error: BaseException, root: Path, payload: dict[str, Any]) -> bool:
    """torch.save reports ENOSPC either as the OSError or as its own RuntimeError ("file write failed")."""
    if any(is_disk_full(e) for e in (error, error.__cause__, error.__context__)):
        return True
    free = free_bytes(root)
    return isinstance(error, RuntimeError) and free is not None and free < payload_bytes(payload)


def payload_bytes(payload: Any, _seen: set | None = None) -> int:
    """Roughly what torch.save will write: the bytes of every storage in ``payload``, each once (the tied
    wte/lm_head share one), the rest being small."""
    seen = set() if _seen is None else _seen
    if isinstance(payload, torch.Tensor):
        storage = payload.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(payload, dict):
        return sum(payload_bytes(v, seen) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(payload_bytes(v, seen) for v in payload)
    return 0


def _write_synced(path: Path, write) -> None:
    with open_private(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict of a checkpoint directory (or its checkpoint.pt)."""
    path = Path(path)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    state = torch.load(file, map_location=map_location, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{file} has checkpoint format {state.get('format')!r}; this version reads "
                         f"format {CHECKPOINT_FORMAT}")
    return state
