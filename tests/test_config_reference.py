"""docs/configuration.md is generated from the schema; this fails when a key changes and the docs were not rebuilt."""

from pathlib import Path

from tui_trainer.training.lib.config import config_schema
from tui_trainer.training.lib.config_docs import render_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale: run python -m tui_trainer.training.lib.config_docs > docs/configuration.md")


def test_reference_names_every_key():
    text = render_reference()
    for spec in config_schema():
        assert f"| `{spec.name}` |" in text and f"## [{spec.section}]" in text
