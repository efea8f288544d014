"""The shard loader: window order across ranks and micro-steps, epochs, shuffling, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tui_trainer.training.lib.data import ShardLoader, build_dataloaders
from tui_trainer.training.lib.shards import list_shards
from tui_trainer.training.lib.sources import DataError

from .data_helpers import make_cfg, write_shards

B, T = 2, 8  # a window is 17 tokens; windows start every 16


@pytest.fixture
def shard_dir(tmp_path):
    # Train shards of 100, 50 and 81 tokens: 6, 3 and 5 windows (a window needs B*T+1 tokens).
    write_shards(tmp_path / "shards", 40, [100, 50, 81])
    return tmp_path / "shards"


def loader(shard_dir, rank=0, world=1, **kw) -> ShardLoader:
    return ShardLoader(list_shards(shard_dir, "train"), B, T, rank, world, **kw)


def first_token(x: torch.Tensor) -> int:
    return int(x[0, 0])


def test_batches_are_shifted_windows_in_shard_order(shard_dir):
    ld = loader(shard_dir)
    assert ld.shard_windows == [6, 3, 5] and ld.windows_per_epoch == 14
    x, y = ld.next_batch()
    assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x.flatten(), torch.arange(40, 56)) and torch.equal(y.flatten(), torch.arange(41, 57))
    starts = [first_token(x)] + [first_token(ld.next_batch()[0]) for _ in range(13)]
    # train tokens are numbered from 40 (after the val shard): shard 1 at 40, shard 2 at 140, shard 3 at 190
    assert starts == [40 + 16 * k for k in range(6)] + [140 + 16 * k for k in range(3)] + \
        [190 + 16 * k for k in range(5)]
    assert ld.epoch == 1 and first_token(ld.next_batch()[0]) == 40  # the next epoch starts over


@pytest.mark.parametrize("shuffle", [False, True])
def test_two_ranks_read_the_windows_of_one_rank_with_double_accumulation(shard_dir, shuffle):
    """The contract's window rule: step s, micro-step m, rank r reads window s*W*A + m*W + r."""
    steps = 20  # crosses an epoch boundary
    ranks = [loader(shard_dir, r, 2, shuffle=shuffle, seed=7) for r in range(2)]
    single = loader(shard_dir, 0, 1, shuffle=shuffle, seed=7)
    for _ in range(steps):
        ddp = sorted(first_token(ld.next_batch()[0]) for ld in ranks)  # world 2 x accum 1
        accum = sorted(first_token(single.next_batch()[0]) for _ in range(2))  # world 1 x accum 2
        assert ddp == accum
    assert ranks[0].state_dict() == ranks[1].state_dict()  # one position for every rank
    assert ranks[0].state_dict()["position"] == single.state_dict()["position"] == 2 * steps


def test_rank_r_reads_global_window_position_plus_r(shard_dir):
    world, accum = 3, 2
    ref = loader(shard_dir)
    order = [first_token(ref.next_batch()[0]) for _ in range(3 * world * accum)]
    lds = [loader(shard_dir, r, world) for r in range(world)]
    for s in range(3):
        for m in range(accum):
            for r, ld in enumerate(lds):
                assert first_token(ld.next_batch()[0]) == order[s * world * accum + m * world + r]


def test_shuffle_visits_every_window_once_per_epoch_in_a_new_order(shard_dir):
    ld = loader(shard_dir, shuffle=True, seed=1)
    epoch0 = [first_token(ld.next_batch()[0]) for _ in range(14)]
    epoch1 = [first_token(ld.next_batch()[0]) for _ in range(14)]
    plain = loader(shard_dir)
    sequential = [first_token(plain.next_batch()[0]) for _ in range(14)]
    assert sorted(epoch0) == sorted(epoch1) == sorted(sequential)
    assert epoch0 != epoch1 and epoch0 != sequential
    again = loader(shard_dir, shuffle=True, seed=1)
    assert [first_token(again.next_batch()[0]) for _ in range(28)] == epoch0 + epoch1  # reproducible
    other = loader(shard_dir, shuffle=True, seed=2)
    assert [first_token(other.next_batch()[0]) for _ in range(14)] != epoch0


@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_from_state_dict_gives_the_same_next_batches(shard_dir, shuffle):
    a = loader(shard_dir, 1, 2, shuffle=shuffle, seed=3)
    for _ in range(9):
        a.next_batch()
    state = json.loads(json.dumps(a.state_dict()))  # survives a JSON round trip (checkpoints)
    b = loader(shard_dir, 1, 2, shuffle=shuffle, seed=3)
    b.load_state_dict(state)
    for _ in range(12):
        xa, ya = a.next_batch()
        xb, yb = b.next_batch()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # One rank's state resumes another rank (and another world size) at the same global position.
    c = loader(shard_dir, 0, 1, shuffle=shuffle, seed=3)
    c.load_state_dict(state)
    assert c.position == state["position"]


def test_resume_with_a_new_batch_shape_keeps_the_epoch_fraction(shard_dir):
    a = loader(shard_dir)
    for _ in range(7):
        a.next_batch()  # 7 of 14 windows: half an epoch
    b = ShardLoader(list_shards(shard_dir, "train"), 1, 8, 0, 1)  # 8-token windows: 12+6+10 = 28 an epoch
    b.load_state_dict(a.state_dict())
    assert b.windows_per_epoch == 28 and b.position == 14


def test_resume_against_other_shards_is_refused(shard_dir, tmp_path):
    a = loader(shard_dir)
    a.next_batch()
    write_shards(tmp_path / "other", 40, [100, 60])
    b = ShardLoader(list_shards(tmp_path / "other", "train"), B, T)
    with pytest.raises(DataError, match="different token shards"):
        b.load_state_dict(a.state_dict())


def test_val_loader_resets_to_its_first_window(tmp_path):
    write_shards(tmp_path / "shards", 60, [100])
    cfg = make_cfg(tmp_path, f"data.shard_dir={tmp_path / 'shards'}")
    train, val = build_dataloaders(cfg, 0, 1)
    assert not val.shuffle and train.shuffle == cfg.data.shuffle
    first = [val.next_batch()[0] for _ in range(5)]  # 3 windows, so it wraps around
    assert [first_token(x) for x in first] == [0, 16, 32, 0, 16]
    val.reset()
    assert torch.equal(val.next_batch()[0], first[0])
    assert not train.next_batch()[0].is_pinned()  # no CUDA here: plain memory


def test_shards_smaller_than_one_window_are_a_clear_error(tmp_path):
    write_shards(tmp_path / "shards", 10, [100])
    cfg = make_cfg(tmp_path, f"data.shard_dir={tmp_path / 'shards'}")
    with pytest.raises(DataError, match=r"val shards hold no complete batch window.*2 × 8 \+ 1 = 17") as e:
        build_dataloaders(cfg, 0, 1)
    assert "data.val_fraction" in str(e.value)


def test_missing_shards_say_how_to_prepare(tmp_path):
    cfg = make_cfg(tmp_path, f"data.shard_dir={tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="python -m tui_trainer.training.prepare"):
        build_dataloaders(cfg, 0, 1)


def test_loader_reads_shards_memory_mapped(shard_dir):
    ld = loader(shard_dir)
    ld.next_batch()
    mm = next(iter(ld._mmaps.values()))
    assert isinstance(mm, np.memmap)
