"""Checkpoint files: atomic step directories, keep-last pruning, newest-complete lookup, RNG round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tui_trainer.training.lib.checkpoint import (
    capture_rng_state, find_latest_checkpoint, gather_rng_states, list_checkpoints, load_checkpoint,
    restore_rng_state, save_checkpoint,
)
from tui_trainer.training.lib.config import config_to_dict, config_to_toml, load_config
from tui_trainer.training.lib.model import GPT
from tui_trainer.training.lib.optim import configure_optimizer

TINY = ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=16", "sample.max_tokens=4"]


@pytest.fixture()
def trained():
    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opt = configure_optimizer(model, cfg, "cpu")
    x = torch.randint(0, 50257, (2, 16))
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    return cfg, model, opt


def save(root, step, cfg, model, opt, keep_last=0):
    return save_checkpoint(root, step, model=model, optimizer=opt, data_state={"position": step},
                           rng=gather_rng_states(torch.device("cpu")), config=config_to_dict(cfg),
                           config_toml=config_to_toml(cfg), tokens=step * 256, evals_done=True,
                           keep_last=keep_last)


def test_round_trip(tmp_path, trained):
    cfg, model, opt = trained
    path = save(tmp_path, 7, cfg, model, opt)
    assert path.name == "step-00000007"
    assert sorted(p.name for p in path.iterdir()) == ["checkpoint.pt", "config.toml", "meta.json"]
    state = load_checkpoint(path)  # weights_only=True inside: plain tensors and Python values only
    assert (state["step"], state["tokens"], state["data"], state["world_size"]) == (7, 1792, {"position": 7}, 1)
    assert state["trainer"] == "train" and state["config"] == config_to_dict(cfg)
    assert "transformer.h.0.attn.c_attn.weight" in state["model"]
    fresh = GPT(cfg.model)
    fresh.load_state_dict(state["model"])
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    assert fresh.lm_head.weight is fresh.transformer.wte.weight  # tying survives loading
    opt2 = configure_optimizer(fresh, cfg, "cpu")
    opt2.load_state_dict(state["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert (path / "config.toml").read_text() == config_to_toml(cfg)


def test_pruning_and_latest_ignore_incomplete(tmp_path, trained):
    cfg, model, opt = trained
    for step in (2, 4, 6, 8):
        save(tmp_path, step, cfg, model, opt, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000006", "step-00000008"]
    (tmp_path / "step-00000010").mkdir()  # a crash before meta.json: not a checkpoint
    (tmp_path / "step-00000010" / "checkpoint.pt").write_bytes(b"partial")
    (tmp_path / ".tmp-step-00000012-999999999").mkdir()  # a temp dir of a dead writer
    assert find_latest_checkpoint(tmp_path).name == "step-00000008"
    save(tmp_path, 10, cfg, model, opt, keep_last=2)  # replaces the incomplete leftover
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000008", "step-00000010"]
    assert not (tmp_path / ".tmp-step-00000012-999999999").exists()
    assert find_latest_checkpoint(tmp_path / "nothing-here") is None


def test_saving_an_existing_step_keeps_it(tmp_path, trained):
    cfg, model, opt = trained
    first = save(tmp_path, 3, cfg, model, opt)
    stamp = (first / "meta.json").read_text()
    assert save(tmp_path, 3, cfg, model, opt) == first and (first / "meta.json").read_text() == stamp


def test_rng_round_trip():
    device = torch.device("cpu")
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = capture_rng_state(device)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(state, device)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_wrong_format_is_refused(tmp_path):
    torch.save({"format": 99}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="format 99"):
        load_checkpoint(tmp_path / "checkpoint.pt")
