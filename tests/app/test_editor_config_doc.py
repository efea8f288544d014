"""ConfigDocument: edits keep comments, the trainer's validator speaks, saving is atomic, diffs are real."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_trainer.app.config_doc import (SCHEMA, ConfigDocument, InputProblem, format_field_value,
                                        parse_field_input)
from tui_trainer.app.derived import Throughput, activation_bytes, derived_lines, known_throughput
from tui_trainer.channel.summary import RunSummary
from tui_trainer.training.lib.config import ConfigError, TrainingConfig, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[2]

COMMENTED = """# my experiment — keep this comment
[model]
n_layer = 4   # fewer layers
n_head = 4
n_embd = 128

[optim]
# the batch
total_batch_size = 16384
micro_batch_size = 16
"""


def test_set_value_keeps_comments_and_layout(tmp_path):
    doc = ConfigDocument(COMMENTED, path=tmp_path / "c.toml")
    doc.set_value("model.n_layer", 6)
    doc.set_value("schedule.max_steps", 50)          # a section the file does not have yet
    assert "n_layer = 6   # fewer layers" in doc.text
    assert "# my experiment — keep this comment" in doc.text and "# the batch" in doc.text
    assert doc.text.rstrip().endswith("[schedule]\nmax_steps = 50")
    assert doc.value("model.n_layer") == (6, True)
    assert doc.value("model.block_size") == (1024, False)  # a default, not in the file
    assert doc.dirty


def test_save_writes_exactly_the_text_and_reloads(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(COMMENTED)
    doc = ConfigDocument.load(path)
    doc.set_value("optim.micro_batch_size", 8)
    written = doc.save()
    assert written == path and path.read_text() == doc.text and not doc.dirty
    assert load_config(path).optim.micro_batch_size == 8
    other = doc.save(tmp_path / "sub" / "copy.toml")  # save as, into a new folder
    assert other.read_text() == doc.text and doc.path == other
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "sub").glob(".*.tmp"))


def test_validation_is_the_trainers_own():
    doc = ConfigDocument(COMMENTED)
    assert doc.validate().ok
    doc.set_value("optim.micro_batch_size", 3)
    v = doc.validate()
    assert not v.ok
    (problem,) = v.problems
    assert problem.key == "optim.total_batch_size" and "multiple" in problem.reason and problem.fix
    # The same text through the trainer's loader fails the same way.
    with pytest.raises(ConfigError) as e:
        from tui_trainer.training.lib.config import config_from_dict, parse_toml_text
        config_from_dict(parse_toml_text(doc.text))
    assert [p.key for p in e.value.problems] == ["optim.total_batch_size"]


def test_syntax_errors_and_unknown_keys_are_problems_not_exceptions():
    doc = ConfigDocument("[model\nn_layer = 2\n")
    v = doc.validate()
    assert not doc.parsed and v.problems[0].key == "" and "syntax" in v.problems[0].reason
    assert doc.set_value("model.n_layer", 3) is False  # the form waits until the text parses
    doc.set_text("[model]\nn_layr = 2\n")
    (problem,) = doc.validate().problems
    assert problem.key == "model.n_layr" and "n_layer" in problem.fix


def test_form_input_parsing_uses_the_validators_wording():
    assert parse_field_input(SCHEMA["optim.total_batch_size"], "524_288") == 524288
    assert parse_field_input(SCHEMA["optim.max_lr"], "6e-4") == 6e-4
    assert parse_field_input(SCHEMA["launch.env"], '{ NCCL_DEBUG = "WARN" }') == {"NCCL_DEBUG": "WARN"}
    assert parse_field_input(SCHEMA["data.path"], " spaced ") == " spaced "
    with pytest.raises(InputProblem) as e:
        parse_field_input(SCHEMA["model.n_layer"], "twelve")
    assert e.value.problem.key == "model.n_layer" and "integer" in e.value.problem.reason
    assert "n_layer = 12" in e.value.problem.fix
    assert format_field_value(SCHEMA["launch.env"], {}) == "{}"
    assert format_field_value(SCHEMA["optim.max_lr"], 6e-4) == "0.0006"


def test_diff_against_the_preset_it_came_from(tmp_path):
    doc = ConfigDocument(COMMENTED, path=tmp_path / "preset.toml")
    assert doc.diff() == ""
    doc.set_value("model.n_layer", 8)
    doc.save(tmp_path / "mine.toml")
    diff = doc.diff()
    assert "preset.toml" in diff and "mine.toml" in diff
    assert "-n_layer = 4   # fewer layers" in diff and "+n_layer = 8   # fewer layers" in diff


def test_loading_a_missing_file_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError) as e:
        ConfigDocument.load(tmp_path / "nope.toml")
    assert "nope.toml" in str(e.value)


def test_every_preset_in_the_repo_opens_and_validates():
    presets = sorted((REPO / "configs").glob("*.toml"))
    assert presets, "configs/ should hold presets"
    for path in presets:
        doc = ConfigDocument.load(path)
        assert doc.validate().ok, (path, doc.validate().problems)


def test_derived_lines_follow_the_config():
    cfg = TrainingConfig()
    rows = dict(derived_lines(cfg))
    assert rows["grad accum / rank"] == "8"
    assert rows["tokens / step"] == "524,288"
    assert "unknown" in rows["est. duration"]
    cfg.optim.micro_batch_size = 32
    assert dict(derived_lines(cfg))["grad accum / rank"] == "16"
    assert activation_bytes(cfg, 2) < activation_bytes(cfg, 4)


def test_duration_estimate_comes_from_an_earlier_run_of_the_same_shape():
    cfg = TrainingConfig()
    same = RunSummary(config=config_to_dict(cfg), tok_per_s=52428.8, step=10)
    other_cfg = TrainingConfig()
    other_cfg.model.n_layer = 2
    other = RunSummary(config=config_to_dict(other_cfg), tok_per_s=1e6, step=10)
    warming = RunSummary(config=config_to_dict(cfg), tok_per_s=1e6, step=0)
    found = known_throughput(cfg, [("other", other), ("warming", warming), ("same", same)])
    assert found == Throughput(52428.8, "same")
    rows = dict(derived_lines(cfg, found))
    # 10B tokens at 52,428.8 tok/s = 190,730 s ≈ 2d04h
    assert rows["est. duration"].startswith("2d04h")
    assert known_throughput(cfg, [("other", other)]) is None


def test_lenient_config_keeps_good_values_while_a_cross_key_rule_fails():
    doc = ConfigDocument("[optim]\nmicro_batch_size = 3\nmax_lr = \"fast\"\n[model]\nn_layer = 2\n")
    v = doc.validate()
    assert not v.ok and v.config is None
    assert {p.key for p in v.problems} == {"optim.max_lr", "optim.total_batch_size"}
    assert v.lenient.optim.micro_batch_size == 3 and v.lenient.model.n_layer == 2
    assert v.lenient.optim.max_lr == TrainingConfig().optim.max_lr  # the bad value stays at its default


def test_lenient_config_keeps_a_value_that_only_breaks_a_rule_between_keys():
    v = ConfigDocument("[optim]\ntotal_batch_size = 16384\nmicro_batch_size = 3\n[model]\nblock_size = 256\n").validate()
    assert not v.ok
    assert v.lenient.optim.total_batch_size == 16384 and v.lenient.optim.micro_batch_size == 3


def test_preflight_warns_about_local_files_that_are_not_there(tmp_path):
    from tui_trainer.app.config_doc import preflight
    cfg = TrainingConfig()
    assert preflight(cfg) == []
    cfg.data.source, cfg.data.path = "files", str(tmp_path / "corpus" / "*.txt")
    cfg.eval.hellaswag_path = str(tmp_path / "hs.jsonl")
    assert [w.key for w in preflight(cfg)] == ["data.path", "eval.hellaswag_path"]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("hi")
    (tmp_path / "hs.jsonl").write_text("{}")
    assert preflight(cfg) == []
    cfg.eval.hellaswag_every, cfg.eval.hellaswag_path = 0, "/nope"   # HellaSwag off: no warning
    assert preflight(cfg) == []
