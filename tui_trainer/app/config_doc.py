"""The config being edited: a tomlkit document (so saving keeps the user's comments and layout), validated with
the trainer's own validator, diffable against the preset it came from. No Textual here.

The text is the source of truth. The form writes single values into the tomlkit document; the TOML view
replaces the whole text. Both go through this class, so form and text never disagree.
"""

from __future__ import annotations

import difflib
import glob
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from tui_trainer.training.lib.config import (
    ConfigError, ConfigProblem, FieldSpec, TrainingConfig, config_from_dict, config_schema,
    parse_toml_text,
)

SCHEMA: dict[str, FieldSpec] = {spec.key: spec for spec in config_schema()}


@dataclass
class Validation:
    """The result of validating the current text: a config when valid, every problem otherwise."""
    config: TrainingConfig | None
    problems: list[ConfigProblem] = field(default_factory=list)
    # Every value that is fine on its own (right type, in range), even while a rule between keys fails:
    # what the derived panel shows, so it follows each edit instead of freezing at the last valid config.
    lenient: TrainingConfig | None = None

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.problems

    def by_key(self) -> dict[str, list[ConfigProblem]]:
        out: dict[str, list[ConfigProblem]] = {}
        for p in self.problems:
            out.setdefault(p.key, []).append(p)
        return out


def lenient_config(data: dict[str, Any]) -> TrainingConfig:
    """A config from every value that passes its own field check; the rest stay at their defaults."""
    cfg = TrainingConfig()
    for section, table in data.items():
        if not isinstance(table, dict) or not hasattr(cfg, section):
            continue
        for name, value in table.items():
            spec = SCHEMA.get(f"{section}.{name}")
            if spec is not None and _field_ok(spec, value):
                setattr(getattr(cfg, section), name, float(value) if spec.type is float else value)
    return cfg


def _field_ok(spec: FieldSpec, value: Any) -> bool:
    """Does ``value`` pass the validator's checks for this one key? (Rules between keys are not asked.)"""
    # The trainer's own per-key check (type, choices, bounds) — the one config_from_dict runs on every value.
    from tui_trainer.training.lib.config import check_value
    return check_value(spec, value)[1] is None


def preflight(cfg: TrainingConfig) -> list[ConfigProblem]:
    """Things the validator cannot know but this machine can: local files the config names that are not there.

    The trainer would fail on them after starting; the editor shows them as warnings before launch.
    """
    warnings = []
    if cfg.data.path and cfg.data.source in ("files", "shakespeare"):
        pattern = os.path.expanduser(cfg.data.path)
        if not (Path(pattern).exists() or glob.glob(pattern)):
            warnings.append(ConfigProblem("data.path", f"nothing at {cfg.data.path} on this machine",
                                          "fix the path, or clear it to download where the source allows"))
    if cfg.eval.hellaswag_path and cfg.eval.hellaswag_every:
        if not Path(os.path.expanduser(cfg.eval.hellaswag_path)).is_file():
            warnings.append(ConfigProblem("eval.hellaswag_path", f"no file {cfg.eval.hellaswag_path}",
                                          "fix the path, or clear it to download the official file"))
    return warnings


class InputProblem(ValueError):
    """A form entry that cannot become a value of the field's type; carries the validator's own wording."""

    def __init__(self, problem: ConfigProblem):
        super().__init__(str(problem))
        self.problem = problem


def parse_field_input(spec: FieldSpec, text: str) -> Any:
    """Turn what was typed into a form input into a TOML value for ``spec``; InputProblem if it cannot be one.

    The problem is produced by the trainer's validator (config_from_dict on the raw string), so the wording
    and the suggested fix are the same as when the trainer reads a bad file.
    """
    raw = text.strip()
    if spec.type is str:
        return text
    try:
        if spec.type is int:
            return int(raw.replace("_", ""))
        if spec.type is float:
            return float(raw.replace("_", ""))
        if spec.type is bool:
            return {"true": True, "false": False}[raw.lower()]
        if spec.type is dict:
            parsed = parse_toml_text(f"v = {raw or '{}'}")["v"]
            if isinstance(parsed, dict):
                return parsed
    except (ValueError, KeyError, ConfigError):
        pass
    try:
        config_from_dict({spec.section: {spec.name: raw}})
    except ConfigError as e:
        for problem in e.problems:
            if problem.key == spec.key:
                raise InputProblem(problem) from None
    raise InputProblem(ConfigProblem(spec.key, f"cannot read {raw!r}"))


def format_field_value(spec: FieldSpec, value: Any) -> str:
    """The text a form input shows for a value."""
    if spec.type is dict:
        return _inline(value)
    if spec.type is bool:
        return "true" if value else "false"
    if spec.type is float:
        return repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return str(value)


def _inline(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "{}"
    table = tomlkit.inline_table()
    table.update(value)
    return table.as_string()


class ConfigDocument:
    """One TOML config open in the editor."""

    def __init__(self, text: str = "", *, path: str | os.PathLike | None = None,
                 origin_text: str | None = None, origin_path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else None
        self.origin_path = Path(origin_path) if origin_path else self.path
        self.origin_text = text if origin_text is None else origin_text
        self.saved_text = text
        self._doc: tomlkit.TOMLDocument | None = None
        self._syntax: ConfigProblem | None = None
        self.syntax_at: tuple[int, int] | None = None  # (line, column), 1-based, of a syntax error
        self.text = ""
        self.set_text(text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ConfigDocument":
        """Open a TOML file. A missing or unreadable file raises ConfigError (shown to the user as a message);
        a file with a syntax error opens fine, with the error among its problems, so it can be fixed here."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([ConfigProblem("", f"no such file: {path}",
                                             "check the path (presets live in configs/)")], str(path)) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError([ConfigProblem("", f"cannot read {path}: {e}", "pick a readable UTF-8 TOML file")],
                              str(path)) from None
        return cls(text, path=path)

    # -------------------------------------------------------------------------------------------- editing
    @property
    def dirty(self) -> bool:
        return self.text != self.saved_text

    @property
    def parsed(self) -> bool:
        return self._doc is not None

    def set_text(self, text: str) -> None:
        """Replace the whole text (the TOML view). A syntax error keeps the text and becomes a problem."""
        self.text = text
        try:
            self._doc = tomlkit.parse(text)
            self._syntax, self.syntax_at = None, None
        except TOMLKitError as e:
            self._doc = None
            line, col = getattr(e, "line", None), getattr(e, "col", None)
            self.syntax_at = (line, col) if isinstance(line, int) and isinstance(col, int) else None
            self._syntax = ConfigProblem("", f"TOML syntax error: {e}",
                                         "fix that line in the TOML view (F6 goes there)")

    def data(self) -> dict[str, Any]:
        """The parsed file as plain Python values ({} while the text has a syntax error)."""
        return self._doc.unwrap() if self._doc is not None else {}

    def value(self, key: str) -> tuple[Any, bool]:
        """(value, set_in_file) for a dotted key; the default when the file does not set it."""
        section, name = key.split(".", 1)
        table = self.data().get(section)
        if isinstance(table, dict) and name in table:
            return table[name], True
        return SCHEMA[key].default, False

    def set_value(self, key: str, value: Any) -> bool:
        """Write one value into the document, keeping every comment. False while the text does not parse."""
        if self._doc is None:
            return False
        section, name = key.split(".", 1)
        if section not in self._doc:
            self._add_section(section)
        table = self._doc[section]
        if isinstance(value, dict):
            inline = tomlkit.inline_table()
            inline.update(value)
            value = inline
        table[name] = value  # type: ignore[index]
        self.text = self._doc.as_string()
        return True

    def _add_section(self, section: str) -> None:
        assert self._doc is not None
        if self.text and not self.text.endswith("\n\n"):
            self._doc.add(tomlkit.nl())
        self._doc.add(section, tomlkit.table())

    # ---------------------------------------------------------------------------------------- validating
    def validate(self) -> Validation:
        """Run the trainer's validator (tomllib parse + config_from_dict) on the current text."""
        if self._syntax is not None:
            return Validation(None, [self._syntax])
        try:
            data = parse_toml_text(self.text, str(self.path or ""))
        except ConfigError as e:
            return Validation(None, list(e.problems))
        try:
            cfg = config_from_dict(data, str(self.path or ""))
            return Validation(cfg, [], cfg)
        except ConfigError as e:
            return Validation(None, list(e.problems), lenient_config(data))

    # -------------------------------------------------------------------------------------------- output
    def diff(self) -> str:
        """Unified diff from the preset this config came from to the current text ('' when unchanged)."""
        name = str(self.origin_path) if self.origin_path else "original"
        lines = difflib.unified_diff(self.origin_text.splitlines(keepends=True), self.text.splitlines(keepends=True),
                                     fromfile=name, tofile=str(self.path or "(unsaved)"))
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the text (comments and layout as the user left them) atomically; returns the path written."""
        target = Path(path).expanduser() if path else self.path
        if target is None:
            raise ConfigError([ConfigProblem("", "this config has no file yet", "use save as and name one")])
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.text)
            if target.exists():
                os.chmod(tmp, target.stat().st_mode & 0o777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.path, self.saved_text = target, self.text
        return target
