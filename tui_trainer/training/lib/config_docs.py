"""Render the config key reference (docs/configuration.md) from the schema, so the docs cannot drift.

    python -m tui_trainer.training.lib.config_docs > docs/configuration.md
"""

from __future__ import annotations

from .config import SECTIONS, _bound, _toml_value, config_schema, section_help


def render_reference() -> str:
    lines = ["# Configuration keys", "",
             "Generated from `tui_trainer/training/lib/config.py` by "
             "`python -m tui_trainer.training.lib.config_docs > docs/configuration.md`; a test keeps it current.",
             "Defaults are GPT-2 124M's; the presets in `configs/` override what they need. Precedence: "
             "`--set section.key=value` > the TOML file > these defaults. Unknown keys, wrong types and impossible "
             "combinations are rejected with the key, the reason and a fix.", ""]
    specs = config_schema()
    for section in SECTIONS:
        lines += [f"## [{section}]", "", section_help(section), "",
                  "| key | default | meaning |", "|---|---|---|"]
        for s in (s for s in specs if s.section == section):
            extra = []
            if s.choices:
                extra.append("one of " + ", ".join(f"`{c}`" for c in s.choices))
            if s.min is not None and not s.choices:
                extra.append("> 0" if 0 < s.min < 1e-20 else f"≥ {_bound(s.min)}")
            if s.max is not None:
                extra.append(f"≤ {_bound(s.max)}")
            if s.unit:
                extra.append(f"unit: {s.unit}")
            meaning = s.help.replace("|", "\\|") + (f" ({'; '.join(extra)})" if extra else "")
            lines.append(f"| `{s.name}` | `{_toml_value(s.default)}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_reference(), end="")
