"""Small modal dialogs: confirm, ask for a line of text, pick a config file."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no with a body that may be long (it scrolls). Enter presses the focused button (Cancel when the
    action destroys something), `y` confirms, Escape and `n` cancel."""

    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm", show=False),
    ]

    def __init__(self, title: str, body: str | Text, *, confirm: str = "Confirm", danger: bool = False) -> None:
        super().__init__(classes="dialog")
        self.title_text, self.body, self.confirm_label, self.danger = title, body, confirm, danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.body)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        # A destructive action is never one Enter away: Cancel takes the focus, `y` or a click confirms.
        self.query_one("#cancel" if self.danger else "#confirm", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class PromptDialog(ModalScreen[str | None]):
    """One line of text (a sample prompt, a file name). Enter accepts, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, *, value: str = "", placeholder: str = "", hint: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text, self.value, self.placeholder, self.hint = title, value, placeholder, hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box dialog-small"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            if self.hint:
                yield Static(self.hint, classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def accept(self) -> None:
        self.dismiss(self.query_one(Input).value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class OpenConfigDialog(ModalScreen[str | None]):
    """Pick a preset from configs/ or type any TOML path."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("down", "to_presets", "Presets", show=False)]

    def __init__(self, presets: list[Path]) -> None:
        super().__init__(classes="dialog")
        self.presets = presets

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label("Open a config", classes="dialog-title")
            yield Input(placeholder="path/to/config.toml (Enter opens)", id="path-input")
            yield Static("Presets (↓ or Tab, then Enter):", classes="dialog-hint")
            yield OptionList(*[Option(Text(str(p)), id=str(p)) for p in self.presets], id="presets")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        # The path box first: what is typed goes there, and Enter opens it (Tab/Down reach the presets).
        self.query_one(Input).focus()

    def action_to_presets(self) -> None:
        presets = self.query_one(OptionList)
        if self.presets and not presets.has_focus:
            presets.focus()
            if presets.highlighted is None:
                presets.highlighted = 0

    @on(Input.Submitted)
    def typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def rank_keys(query: str, keys: list[tuple[str, str]]) -> list[str]:
    """Keys matching every word of ``query``, in key or help text; keys whose name matches come first."""
    words = query.lower().split()
    scored = []
    for order, (key, help_text) in enumerate(keys):
        name, haystack = key.lower(), f"{key} {help_text}".lower()
        if not all(word in haystack for word in words):
            continue
        in_key = sum(word in name for word in words)
        starts = any(name.split(".")[-1].startswith(word) for word in words)
        scored.append((-in_key, not starts, order, key))
    return [key for *_, key in sorted(scored)]


class KeySearchDialog(ModalScreen[str | None]):
    """Jump to a config key: type part of its name (or of its help), Enter goes to the best match."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("down", "to_matches", "Matches", show=False)]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog")
        self.keys = keys
        self.help = dict(keys)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box dialog-small"):
            yield Label("Find a config key", classes="dialog-title")
            yield Input(placeholder="e.g. max_steps, lr, hellaswag (Enter jumps to the first match)",
                        id="key-query")
            yield OptionList(id="key-matches")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._show_matches("")

    @on(Input.Changed, "#key-query")
    def _typed(self, event: Input.Changed) -> None:
        self._show_matches(event.value)

    def _show_matches(self, query: str) -> None:
        matches = self.query_one(OptionList)
        matches.clear_options()
        for key in rank_keys(query, self.keys):
            line = Text.assemble((key, "bold"), "  ", (self.help[key], "dim"))
            line.truncate(100, overflow="ellipsis")
            matches.add_option(Option(line, id=key))
        if matches.option_count:
            matches.highlighted = 0

    def action_to_matches(self) -> None:
        matches = self.query_one(OptionList)
        if not matches.has_focus and matches.option_count:
            matches.focus()

    @on(Input.Submitted, "#key-query")
    def _enter(self) -> None:
        matches = self.query_one(OptionList)
        if matches.option_count:
            self.dismiss(matches.get_option_at_index(matches.highlighted or 0).id)
        else:
            self.notify("No key matches; try a shorter word.", severity="warning", timeout=3)

    @on(OptionList.OptionSelected, "#key-matches")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
