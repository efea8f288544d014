"""Every config key has a range the trainer can run: what crashed, overflowed or hung in issue 12 is refused
by the validator with the key, the reason and the fix; sizes too big for the machine are refused before
allocation."""

from __future__ import annotations

import math

import pytest

from tui_trainer.training.lib.config import ConfigError, config_from_dict, config_schema, load_config
from tui_trainer.training.lib.config_limits import INT64_MAX
from tui_trainer.training.lib.memory_check import GB, memory_problems


def refusal(*overrides: str) -> tuple[str, str, str]:
    with pytest.raises(ConfigError) as caught:
        load_config(None, list(overrides))
    [problem] = caught.value.problems
    assert problem.reason and problem.fix, problem
    return problem.key, problem.reason, problem.fix


@pytest.mark.parametrize("override, key, words", [
    ("optim.eps=0", "optim.eps", "minimum"),
    ("optim.eps=-0.0", "optim.eps", "minimum"),
    ('data.shard_dir="\\u0000"', "data.shard_dir", "NUL"),
    ("sample.count=99999999999999999999", "sample.count", "64-bit"),
    ("system.seed=18446744073709551616", "system.seed", "64-bit"),
    ("model.n_embd=1048576", "model.n_embd", "maximum"),
    ("model.vocab_size=100000000000", "model.vocab_size", "maximum"),
    ("model.n_layer=100000", "model.n_layer", "maximum"),
    ("eval.val_steps=99999999999999999999", "eval.val_steps", "64-bit"),
    ("eval.val_steps=1000000", "eval.val_steps", "maximum"),
    ("sample.count=100000", "sample.count", "maximum"),
    ("optim.max_lr=1e999", "optim.max_lr", "finite"),
])
def test_what_crashed_or_hung_the_trainer_is_refused_up_front(override, key, words):
    got_key, reason, _ = refusal(override)
    assert got_key == key and words in reason


def test_a_dotted_override_into_a_plain_key_is_refused_not_ignored():
    key, reason, fix = refusal("model.n_layer.x=7")
    assert key == "model.n_layer.x" and "not a table" in reason and "--set model.n_layer=" in fix
    assert load_config(None, ['launch.env.NCCL_DEBUG="WARN"']).launch.env == {"NCCL_DEBUG": "WARN"}


def test_nul_is_refused_in_every_string_and_table():
    for spec in config_schema():
        if spec.type is str and not spec.choices:
            with pytest.raises(ConfigError):
                config_from_dict({spec.section: {spec.name: "a\0b"}})
    with pytest.raises(ConfigError):
        config_from_dict({"launch": {"env": {"A": "x\0"}}})


def test_every_number_has_a_range_that_fits_64_bits():
    for spec in config_schema():
        if spec.type in (int, float):
            assert spec.min is not None and spec.max is not None, spec.key
            if spec.type is int:
                assert -INT64_MAX - 1 <= spec.min <= spec.max <= INT64_MAX, spec.key
            else:
                assert math.isfinite(spec.min) and math.isfinite(spec.max), spec.key


def test_sizes_too_big_for_the_machine_are_refused_with_the_key_to_change():
    huge_model = load_config(None, ["model.n_layer=1000", "model.n_embd=8192", "model.n_head=64"])
    [problem] = memory_problems(huge_model, 24 * GB, "this machine's available RAM")
    assert problem.key in ("model.n_layer", "model.n_embd") and "GB" in problem.reason and problem.fix
    big_batch = load_config(None, ["optim.micro_batch_size=8192", "optim.total_batch_size=8388608"])
    [problem] = memory_problems(big_batch, 24 * GB, "this machine's available RAM")
    assert problem.key == "optim.micro_batch_size"
    assert memory_problems(load_config(None), 24 * GB, "RAM") == []  # GPT-2 124M at micro-batch 64 is fine


def test_a_config_with_control_characters_reads_back_as_itself():
    """The fuzzer's find: a prompt with a raw \\x0e was written into config.toml unescaped, so the run
    beside it could not be resumed (nor started from the console, which writes the same file)."""
    from tui_trainer.training.lib.config import config_to_toml, parse_toml_text
    prompt = "tab\there \x0e\x7f \"quoted\" back\\slash\r\nnext line é 👋"
    cfg = load_config(None, [])
    cfg.sample.prompt = prompt
    assert config_from_dict(parse_toml_text(config_to_toml(cfg))).sample.prompt == prompt
