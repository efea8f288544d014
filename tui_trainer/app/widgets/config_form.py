"""The config form, generated from ``config_schema()``: one row per key with a typed input, its help and its
problems. Choices become a Select, booleans a Switch, everything else an Input (numbers are checked by the
trainer's validator as you type)."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from tui_trainer.app.config_doc import format_field_value
from tui_trainer.training.lib.config import SECTIONS, ConfigProblem, FieldSpec, config_schema, section_help


def field_id(key: str) -> str:
    return "field-" + key.replace(".", "--")


class FieldRow(Vertical):
    """One config key: name, input, unit, help text and (when there is one) its problem."""

    class Edited(Message):
        """The user changed a value: ``value`` is the Switch/Select value or the Input's text."""

        def __init__(self, row: "FieldRow", value: Any) -> None:
            super().__init__()
            self.row, self.key, self.value = row, row.spec.key, value

    def __init__(self, spec: FieldSpec, value: Any, set_in_file: bool) -> None:
        super().__init__(id=field_id(spec.key), classes="field-row")
        self.spec = spec
        self._value = value
        self._set_in_file = set_in_file
        self._problems: list[ConfigProblem] = []

    def compose(self) -> ComposeResult:
        spec = self.spec
        with Horizontal(classes="field-line"):
            yield Label(spec.name, classes="field-name")
            if spec.choices:
                current = self._value if self._value in spec.choices else spec.default
                yield Select([(c, c) for c in spec.choices], value=current, allow_blank=False,
                             classes="field-input", compact=True)
            elif spec.type is bool:
                yield Switch(bool(self._value), classes="field-switch", animate=False)
            else:
                yield Input(format_field_value(spec, self._value), classes="field-input", compact=True,
                            placeholder=format_field_value(spec, spec.default))
        yield Static(self._help_text(), classes="field-help")

    def _help_text(self) -> Text:
        spec = self.spec
        text = Text()
        for problem in self._problems:
            text.append(f"✗ {problem.reason}", style="bold red")
            if problem.fix:
                text.append(f" — {problem.fix}", style="red")
            text.append("\n")
        text.append(spec.help, style="dim")
        extras = []
        if spec.unit:
            extras.append(spec.unit)
        if not self._set_in_file:
            extras.append(f"default {format_field_value(spec, spec.default)}")
        if extras:
            text.append(f"  ({', '.join(extras)})", style="dim italic")
        return text

    @property
    def set_in_file(self) -> bool:
        return self._set_in_file

    # --------------------------------------------------------------------------------------- updates
    def show_value(self, value: Any, set_in_file: bool) -> None:
        """Reflect the document's value without echoing it back as an edit."""
        self._set_in_file = set_in_file
        self._value = value
        spec = self.spec
        if spec.choices:
            select = self.query_one(Select)
            if value in spec.choices and select.value != value:
                with select.prevent(Select.Changed):
                    select.value = value
        elif spec.type is bool:
            switch = self.query_one(Switch)
            if isinstance(value, bool) and switch.value != value:
                with switch.prevent(Switch.Changed):
                    switch.value = value
        else:
            box = self.query_one(Input)
            shown = format_field_value(spec, value)
            if not self._same(box.value, value) and not box.has_focus:
                with box.prevent(Input.Changed):
                    box.value = shown
        self.query_one(".field-help", Static).update(self._help_text())

    def _same(self, text: str, value: Any) -> bool:
        """Does the input's text already mean this value? (Keeps '6e-4' as typed instead of '0.0006'.)"""
        from tui_trainer.app.config_doc import InputProblem, parse_field_input
        try:
            return parse_field_input(self.spec, text) == value
        except InputProblem:
            return False

    def show_state(self, set_in_file: bool, problems: list[ConfigProblem]) -> None:
        """Whether the file sets this key, and its problems (redrawn only when either changed)."""
        if problems != self._problems or set_in_file != self._set_in_file:
            self._problems, self._set_in_file = problems, set_in_file
            self.set_class(bool(problems), "-invalid")
            self.query_one(".field-help", Static).update(self._help_text())

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self, event.value))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL:
            self.post_message(self.Edited(self, event.value))

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self, event.value))


class FormSection(Vertical):
    """One [section]: its help line and its rows."""

    def __init__(self, section: str, state: StateFn) -> None:
        super().__init__(id=f"section-{section}", classes="form-section")
        self.section = section
        self._state = state

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((f"[{self.section}]", "bold"), "  ", (section_help(self.section), "dim")),
                     classes="section-title")
        for spec in config_schema():
            if spec.section == self.section:
                value, set_in_file, problems = self._state(spec.key)
                row = FieldRow(spec, value, set_in_file)
                row._problems = problems
                row.set_class(bool(problems), "-invalid")
                yield row


# key -> (value, set in file, problems): asked when a row is built, so late-mounted rows show the present state.
StateFn = Callable[[str], "tuple[Any, bool, list[ConfigProblem]]"]


class ConfigForm(VerticalScroll):
    """Every section of the schema with its help, then its keys.

    Sixty-odd rows of inputs take a while to lay out on a slow machine, so the screen's first frame comes
    without them; the sections are then mounted one per frame, and ``Ready`` is posted when all are in.
    """

    class Ready(Message):
        """Every section is mounted."""

    def __init__(self, state: StateFn, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._state = state
        self.ready = False

    def on_mount(self) -> None:
        self.call_after_refresh(self._mount_next, 0)

    async def _mount_next(self, index: int) -> None:
        if index >= len(SECTIONS):
            self.ready = True
            self.post_message(self.Ready())
            return
        # The first section alone (it fills the first screen), then the rest in one go: one layout pass for
        # all of them instead of one per section, which on a loaded machine took seconds.
        upto = index + 1 if index == 0 else len(SECTIONS)
        await self.mount_all([FormSection(section, self._state) for section in SECTIONS[index:upto]])
        self.call_after_refresh(self._mount_next, upto)

    def rows(self) -> list[FieldRow]:
        return list(self.query(FieldRow))

    def row(self, key: str) -> FieldRow:
        return self.query_one(f"#{field_id(key)}", FieldRow)
