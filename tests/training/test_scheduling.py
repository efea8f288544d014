"""Learning-rate schedules: warmup, then cosine / linear / constant to max_lr × min_lr_ratio."""

from __future__ import annotations

import math

import pytest

from tui_trainer.training.lib.config import load_config
from tui_trainer.training.lib.scheduling import get_lr


def cfg_for(kind: str, warmup: int = 10, max_steps: int = 110):
    return load_config(None, [f"schedule.kind={kind}", f"schedule.warmup_steps={warmup}",
                              f"schedule.max_steps={max_steps}", "optim.max_lr=1e-3", "optim.min_lr_ratio=0.1"])


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_warmup_is_linear_to_max_lr(kind):
    cfg = cfg_for(kind)
    assert get_lr(0, cfg) == pytest.approx(1e-4)
    assert get_lr(4, cfg) == pytest.approx(5e-4)
    assert get_lr(9, cfg) == pytest.approx(1e-3)
    assert get_lr(10, cfg) == pytest.approx(1e-3)  # decay starts from the peak


def test_cosine_midpoint_end_and_monotone():
    cfg = cfg_for("cosine")
    assert get_lr(60, cfg) == pytest.approx(1e-4 + 0.5 * 9e-4)  # half way through the decay
    assert get_lr(110, cfg) == pytest.approx(1e-4)
    assert get_lr(500, cfg) == pytest.approx(1e-4)
    lrs = [get_lr(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert get_lr(35, cfg) == pytest.approx(1e-4 + 0.5 * (1 + math.cos(math.pi * 0.25)) * 9e-4)


def test_linear_decay():
    cfg = cfg_for("linear")
    assert get_lr(35, cfg) == pytest.approx(1e-3 - 0.25 * 9e-4)
    assert get_lr(60, cfg) == pytest.approx(5.5e-4)
    assert get_lr(110, cfg) == pytest.approx(1e-4)


def test_constant_after_warmup():
    cfg = cfg_for("constant")
    assert {get_lr(s, cfg) for s in (10, 60, 109, 200)} == {1e-3}


def test_no_warmup_and_warmup_equal_to_run():
    assert get_lr(0, cfg_for("cosine", warmup=0, max_steps=10)) == pytest.approx(1e-3)
    cfg = cfg_for("cosine", warmup=10, max_steps=10)
    assert [round(get_lr(s, cfg), 6) for s in (0, 9)] == [1e-4, 1e-3]


def test_gpt2_recipe_figures():
    cfg = load_config()  # defaults: 6e-4 peak, 715 warmup, 19073 steps, floor 6e-5
    assert get_lr(714, cfg) == pytest.approx(6e-4)
    assert get_lr(19073, cfg) == pytest.approx(6e-5)
