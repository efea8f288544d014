"""TrainingConfig: TOML -> validated dataclasses, CLI overrides, schema, round trip, and the shipped presets."""

from __future__ import annotations

import dataclasses
import re
import sys
import subprocess
from pathlib import Path

import pytest

from tui_trainer.training.lib.config import (
    SECTIONS, ConfigError, TrainingConfig, config_from_dict, config_schema, config_to_toml, derived_figures,
    grad_accum_steps, load_config, parse_toml_text, read_toml,
)

REPO = Path(__file__).resolve().parents[1]
# The shipped presets (other configs in configs/, e.g. the speed benchmark's, have owners of their own).
PRESETS = [REPO / "configs" / name for name in ("default.toml", "shakespeare.toml", "gpt2-124m.toml")]


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return [str(p) for p in info.value.problems]


def test_defaults_are_gpt2_124m():
    cfg = load_config()
    assert (cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd, cfg.model.block_size) == (12, 12, 768, 1024)
    assert cfg.optim.total_batch_size == 2 ** 19 and cfg.schedule.max_steps == 19073
    assert derived_figures(cfg)["parameters"] == 124_475_904


def test_unknown_section_is_rejected_with_did_you_mean():
    [problem] = problems_of({"optimm": {"max_lr": 1e-3}})
    assert problem.startswith("optimm: unknown section") and "did you mean 'optim'" in problem


def test_unknown_key_is_rejected_with_did_you_mean_in_every_section():
    for spec in config_schema():
        typo = spec.name + "x"
        problems = problems_of({spec.section: {typo: spec.default}})
        assert any(p.startswith(f"{spec.section}.{typo}: unknown key") and f"'{spec.name}'" in p
                   for p in problems), problems


def test_unknown_key_without_close_match_lists_known_keys():
    [problem] = problems_of({"model": {"zzzz": 1}})
    assert "known keys:" in problem and "n_layer" in problem


def test_section_that_is_not_a_table():
    [problem] = problems_of({"model": 3})
    assert problem.startswith("model: expected a [section] table")


@pytest.mark.parametrize("section,key,value,expected", [
    ("model", "n_layer", "12", "expected an integer"),
    ("model", "n_layer", True, "expected an integer"),
    ("model", "n_layer", 2.5, "expected an integer"),
    ("optim", "max_lr", "fast", "expected a number"),
    ("system", "compile", 1, "expected true or false"),
    ("data", "source", 3, "expected a string"),
    ("launch", "env", {"A": 1}, "values must be strings"),
])
def test_wrong_type_names_the_key(section, key, value, expected):
    problems = problems_of({section: {key: value}})
    assert any(p.startswith(f"{section}.{key}:") and expected in p for p in problems), problems


def test_choice_and_bounds():
    problems = problems_of({"schedule": {"kind": "cosin"}, "optim": {"min_lr_ratio": 2.0},
                            "model": {"n_layer": 0}})
    assert any("schedule.kind" in p and "did you mean 'cosine'" in p for p in problems)
    assert any("optim.min_lr_ratio" in p and "above the maximum" in p for p in problems)
    assert any("model.n_layer" in p and "below the minimum" in p for p in problems)


def test_impossible_combinations_are_all_reported_at_once():
    problems = problems_of({
        "model": {"n_embd": 100, "n_head": 3, "block_size": 64},
        "optim": {"total_batch_size": 1000, "micro_batch_size": 4},
        "schedule": {"warmup_steps": 50, "max_steps": 10},
        "sample": {"max_tokens": 64},
        "system": {"device": "gpu"},
        "launch": {"nnodes": 2},
        "data": {"source": "files"},
    })
    keys = {p.split(":")[0] for p in problems}
    assert keys == {"model.n_embd", "optim.total_batch_size", "schedule.warmup_steps", "sample.max_tokens",
                    "system.device", "launch.rdzv_endpoint", "data.path"}, problems
    batch = next(p for p in problems if p.startswith("optim.total_batch_size"))
    assert "4 × 64 × 2 = 512" in batch and "use 512 or 1024" in batch  # nnodes = 2


def test_batch_divisibility_counts_every_rank():
    base = {"model": {"block_size": 64}, "optim": {"total_batch_size": 512, "micro_batch_size": 4}}
    assert grad_accum_steps(config_from_dict(base)) == 2
    problems = problems_of({**base, "launch": {"nproc_per_node": 3}})
    assert any(p.startswith("optim.total_batch_size") for p in problems)
    cfg = config_from_dict({**base, "launch": {"nproc_per_node": 2}})
    assert grad_accum_steps(cfg) == 1


def test_precedence_cli_over_toml_over_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[optim]\nmax_lr = 1e-3\nmicro_batch_size = 8\n[data]\nsource = "shakespeare"\n')
    cfg = load_config(path, ["optim.max_lr=3e-4", "data.source=embedded", "launch.env.FOO=bar"])
    assert cfg.optim.max_lr == 3e-4                 # CLI beats TOML
    assert cfg.optim.micro_batch_size == 8          # TOML beats default
    assert cfg.optim.beta2 == 0.95                  # default
    assert cfg.data.source == "embedded"            # bare word override is a string
    assert cfg.launch.env == {"FOO": "bar"}
    later_wins = load_config(path, ["optim.max_lr=1e-2", "optim.max_lr=2e-2"])
    assert later_wins.optim.max_lr == 2e-2


def test_bad_override_and_override_validated():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["max_lr"])
    with pytest.raises(ConfigError, match="optim.max_llr: unknown key.*did you mean 'max_lr'"):
        load_config(None, ["optim.max_llr=1"])


def test_toml_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nn_layer = = 3\n")
    with pytest.raises(ConfigError, match=r"TOML syntax error.*line 2") as info:
        read_toml(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_schema_covers_every_field_with_help():
    specs = config_schema()
    declared = {(s, f.name) for s in SECTIONS
                for f in dataclasses.fields(dataclasses.fields(TrainingConfig)[SECTIONS.index(s)].default_factory)}
    assert {(s.section, s.name) for s in specs} == declared
    for spec in specs:
        assert spec.help and spec.help.endswith((".", ")")), spec.key
        if spec.choices:
            assert spec.default in spec.choices, spec.key


def test_resolved_toml_round_trips_and_comments_every_key():
    cfg = load_config(None, ["model.n_layer=3", "launch.env.X=abc", 'sample.prompt="say \\"hi\\""'])
    text = config_to_toml(cfg)
    assert config_from_dict(parse_toml_text(text)) == cfg
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            assert lines[i - 1].startswith("# "), line


def test_config_import_does_not_import_torch():
    code = ("import sys; import tui_trainer.training.lib.config; from tui_trainer.training.lib import load_config;"
            "import tui_trainer.channel.writer, tui_trainer.channel.control; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_presets_load_and_comment_every_key(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, TrainingConfig)
    lines = preset.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z_]\w*\s*=", line):
            has_comment = "#" in line.split("=", 1)[1] or (i > 0 and lines[i - 1].strip().startswith("#"))
            assert has_comment, f"{preset.name}:{i + 1}: {line!r} has no comment"


def test_gpt2_124m_preset_is_the_reproduction():
    cfg = load_config(REPO / "configs" / "gpt2-124m.toml")
    assert cfg.optim.total_batch_size == 2 ** 19 and cfg.optim.micro_batch_size == 64
    assert cfg.model.block_size == 1024 and cfg.optim.max_lr == 6e-4
    assert (cfg.schedule.warmup_steps, cfg.schedule.max_steps) == (715, 19073)
    assert (cfg.eval.every, cfg.eval.hellaswag_every, cfg.checkpoint.every) == (250, 250, 5000)
    assert cfg.launch.nproc_per_node == 8 and grad_accum_steps(cfg) == 1
    assert cfg.data.source == "fineweb-edu"


def test_default_preset_runs_offline_on_cpu():
    cfg = load_config(REPO / "configs" / "default.toml")
    assert cfg.data.source == "embedded" and cfg.system.device == "cpu"
    assert 0 < cfg.eval.hellaswag_examples <= 1000 and cfg.eval.hellaswag_every > 0
