"""Name a run and give it a one-line note (runs screen, key a). Stored in the run's label.json."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui_trainer.runs.labels import NAME_MAX, NOTE_MAX, label_problems


class RunLabelDialog(ModalScreen[tuple[str, str] | None]):
    """Two lines of text, checked as they are typed; Enter on the note (or Save) stores, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_id: str, name: str = "", note: str = "") -> None:
        super().__init__(classes="dialog")
        self.run_id, self.name_value, self.note_value = run_id, name, note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box dialog-small"):
            yield Label(f"Name and note for {self.run_id}", classes="dialog-title")
            yield Input(self.name_value, placeholder=f"name shown in the runs table (≤ {NAME_MAX})",
                        id="label-name")
            yield Input(self.note_value, placeholder=f"one-line note (≤ {NOTE_MAX})", id="label-note")
            yield Static("", id="label-problems", classes="dialog-hint")
            yield Static("Empty = none; the run id never changes (the CLI keeps using it).",
                         classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#label-name", Input).focus()
        self._check()

    def _values(self) -> tuple[str, str]:
        name, note = self.query_one("#label-name", Input), self.query_one("#label-note", Input)
        return name.value.strip(), note.value.strip()

    @on(Input.Changed)
    def _check(self) -> list[str]:
        problems = label_problems(*self._values())
        self.query_one("#label-problems", Static).update("\n".join(problems))
        self.query_one("#save", Button).disabled = bool(problems)
        return problems

    @on(Input.Submitted, "#label-name")
    def _to_note(self) -> None:
        self.query_one("#label-note", Input).focus()

    @on(Input.Submitted, "#label-note")
    @on(Button.Pressed, "#save")
    def save(self) -> None:
        if not self._check():
            self.dismiss(self._values())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
