"""The token loader: memory-mapped uint16 shards cut into windows, read in one global order shared by all ranks.

A window is B·T+1 consecutive tokens of one shard starting at a multiple of B·T (x = the first B·T, y = the
last B·T; neighbouring windows share one token, as in build-nanogpt). Windows get a global index: epoch e holds
indices [e·N, (e+1)·N) where N is the number of windows in all shards, laid out shard after shard in the epoch's
shard order, each shard's windows in the epoch's window order. Both orders are plain sequential, or — with
shuffling — seeded permutations that change every epoch:
    shard order:         np.random.default_rng([seed, e, 0]).permutation(number of shards)
    windows of shard i:  np.random.default_rng([seed, e, 1, i]).permutation(windows in shard i)
(shards too short for one window are dropped from the order after permuting).

Each ``next_batch`` call on rank r reads window ``position + r`` and advances ``position`` by the world size W,
so at optimizer step s, micro-step m (A micro-steps a step) rank r reads window s·W·A + m·W + r: 2 ranks × 1
micro-step see exactly the windows of 1 rank × 2 micro-steps. ``position`` is the same on every rank, so one
``state_dict`` resumes all of them.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import torch

from .shards import list_shards, resolve_shard_dir
from .sources import DataError


class ShardLoader:
    """Batches (x, y) of int64 CPU tensors shaped (batch_size, block_size) from a list of shard files."""

    def __init__(self, files: list[Path], batch_size: int, block_size: int, rank: int = 0, world_size: int = 1,
                 *, shuffle: bool = False, seed: int = 0, pin_memory: bool = False, split: str = "train"):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.files = [Path(f) for f in files]
        self.batch_size, self.block_size = batch_size, block_size
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.pin_memory = shuffle, seed, pin_memory
        self.tokens_per_window = batch_size * block_size
        self.shard_tokens = [len(_open_shard(f)) for f in self.files]
        # Windows start at multiples of B·T and need B·T+1 tokens.
        self.shard_windows = [max(0, (n - 1) // self.tokens_per_window) for n in self.shard_tokens]
        self.windows_per_epoch = sum(self.shard_windows)
        if self.windows_per_epoch == 0:
            where = ", ".join(f"{f.name} ({n:,} tokens)" for f, n in zip(self.files, self.shard_tokens)) or "none"
            raise DataError(
                f"The {split} shards hold no complete batch window: one micro-batch needs micro_batch_size × "
                f"block_size + 1 = {batch_size} × {block_size} + 1 = {self.tokens_per_window + 1:,} consecutive "
                f"tokens of one shard, and the {split} shards are: {where}. Lower optim.micro_batch_size or "
                "model.block_size" + (", or raise data.val_fraction" if split == "val" else ", or use more data")
                + ".")
        self.position = 0  # global index of the window rank 0 reads next
        self._mmaps: dict[int, np.ndarray] = {}
        self._layouts: dict[int, tuple[list[int], list[int]]] = {}
        self._permutations: dict[tuple[int, int], np.ndarray] = {}

    # -------------------------------------------------------------------------------------- reading
    @property
    def epoch(self) -> int:
        return self.position // self.windows_per_epoch

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        shard, start = self.locate(self.position + self.rank)
        self.position += self.world_size
        window = self._tokens(shard)[start:start + self.tokens_per_window + 1]
        buf = torch.from_numpy(window.astype(np.int64))
        x = buf[:-1].view(self.batch_size, self.block_size)
        y = buf[1:].view(self.batch_size, self.block_size)
        if self.pin_memory:  # lets the trainer's .to(device, non_blocking=True) overlap the copy
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def reset(self) -> None:
        """Back to the first window (the validation loader does this before every evaluation)."""
        self.position = 0

    def locate(self, window: int) -> tuple[int, int]:
        """Global window index -> (shard index in self.files, first token offset in that shard)."""
        epoch, k = divmod(window, self.windows_per_epoch)
        order, starts = self._layout(epoch)
        slot = bisect.bisect_right(starts, k) - 1
        shard = order[slot]
        j = k - starts[slot]
        if self.shuffle:
            j = int(self._permutation(epoch, shard)[j])
        return shard, j * self.tokens_per_window

    def _layout(self, epoch: int) -> tuple[list[int], list[int]]:
        """The epoch's shard order and the first global-in-epoch window index of each slot."""
        if epoch not in self._layouts:
            if self.shuffle:
                order = [int(i) for i in np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.files))]
            else:
                order = list(range(len(self.files)))
            order = [i for i in order if self.shard_windows[i] > 0]
            starts = np.cumsum([0] + [self.shard_windows[i] for i in order[:-1]]).tolist()
            if len(self._layouts) >= 2:  # the ranks of one step straddle at most two epochs
                self._layouts.pop(next(iter(self._layouts)))
            self._layouts[epoch] = (order, starts)
        return self._layouts[epoch]

    def _permutation(self, epoch: int, shard: int) -> np.ndarray:
        key = (epoch, shard)
        if key not in self._permutations:
            if len(self._permutations) >= 4:
                self._permutations.pop(next(iter(self._permutations)))
            rng = np.random.default_rng([self.seed, epoch, 1, shard])
            self._permutations[key] = rng.permutation(self.shard_windows[shard])
        return self._permutations[key]

    def _tokens(self, shard: int) -> np.ndarray:
        if shard not in self._mmaps:
            if len(self._mmaps) >= 4:  # a window's ranks touch at most a couple of shards at a time
                self._mmaps.pop(next(iter(self._mmaps)))
            self._mmaps[shard] = _open_shard(self.files[shard])
        return self._mmaps[shard]

    # ---------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """JSON-able position (identical on every rank) plus what it is valid for."""
        return {
            "position": self.position,
            "windows_per_epoch": self.windows_per_epoch,
            "tokens_per_window": self.tokens_per_window,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "shards": [[f.name, n] for f, n in zip(self.files, self.shard_tokens)],
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue where ``state`` left off. If only the batch shape changed (say micro_batch_size lowered to
        fit memory), continue at the same fraction of the same epoch; other shards are an error."""
        shards = [[f.name, n] for f, n in zip(self.files, self.shard_tokens)]
        if [list(s) for s in state.get("shards", [])] != shards:
            raise DataError(
                "The checkpoint's data position belongs to different token shards than the ones configured now "
                "(files or sizes differ), so training cannot continue where it stopped. Resume with the data "
                "settings the run started with (see its config.toml), or start a new run.")
        position = int(state["position"])
        if state.get("tokens_per_window") != self.tokens_per_window:
            epoch, k = divmod(position, int(state["windows_per_epoch"]))
            position = epoch * self.windows_per_epoch + k * self.windows_per_epoch // int(state["windows_per_epoch"])
        self.position = position


def _open_shard(path: Path) -> np.ndarray:
    try:
        tokens = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"Token shard {path} is missing. Prepare the data again (python -m "
                        "tui_trainer.training.prepare --config <your config>).") from None
    except (OSError, ValueError) as e:
        raise DataError(f"Token shard {path} is unreadable ({e}). Delete its directory and prepare the data "
                        "again.") from None
    if tokens.dtype != np.uint16 or tokens.ndim != 1:
        raise DataError(f"Token shard {path} holds {tokens.dtype} with shape {tokens.shape}; shards must be "
                        "1-D uint16 arrays (GPT-2 token ids). Prepare the data again.")
    return tokens


def use_pinned_memory(cfg) -> bool:
    """Pinned host memory only helps (and only works) when batches go to a CUDA device."""
    device = cfg.system.device
    return (device == "auto" or device.startswith("cuda")) and torch.cuda.is_available()


def build_dataloaders(cfg, rank: int, world_size: int) -> tuple[ShardLoader, ShardLoader]:
    """(train_loader, val_loader) over the shards of ``cfg`` (prepared by ``ensure_shards`` beforehand).

    Train follows ``data.shuffle`` with ``system.seed``; val is sequential and rewinds with ``reset()``.
    """
    shard_dir = resolve_shard_dir(cfg)
    train_files, val_files = list_shards(shard_dir, "train"), list_shards(shard_dir, "val")
    if not train_files or not val_files:
        missing = "training" if not train_files else "validation"
        raise DataError(
            f"No {missing} shards in {shard_dir}. Prepare them with  python -m tui_trainer.training.prepare "
            "--config <your config>  (the trainer also does this itself on rank 0), or point data.shard_dir at "
            "a directory holding *_val_*.npy and *_train_*.npy shards.")
    B, T = cfg.optim.micro_batch_size, cfg.model.block_size
    pin = use_pinned_memory(cfg)
    train = ShardLoader(train_files, B, T, rank, world_size, shuffle=cfg.data.shuffle, seed=cfg.system.seed,
                        pin_memory=pin, split="train")
    val = ShardLoader(val_files, B, T, rank, world_size, shuffle=False, seed=cfg.system.seed, pin_memory=pin,
                      split="val")
    return train, val
