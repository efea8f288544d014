"""The help screen: every binding of every screen, plus what each screen is for."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

SCREEN_NOTES = {
    "Runs": "Every run under the runs root, refreshed every second. A run keeps going when you close the console.",
    "Config editor": "Form and raw TOML stay in sync; problems are the trainer's own validation, "
                     "warnings are this machine's preflight (GPUs or cores, memory, packages). Save keeps "
                     "your comments. F5 launches after a confirmation and opens the run; unsaved edits wait "
                     "for you (F4).\nMoving around the form: Tab / Shift-Tab go field to field; Ctrl-F finds "
                     "a key by name or help text (\"max_steps\", \"warmup\") and jumps to it; PageUp, "
                     "PageDown and the mouse wheel scroll; Enter opens a choice list, Space flips a switch. "
                     "F6 cycles Form → TOML → Diff (the TOML view starts at a syntax error). Under 110 "
                     "columns the checks fold into one line: F7 shows them.",
    "Run dashboard": "Replays the run's event log, then follows it live. Control keys act at the next step "
                     "boundary on every rank and are acknowledged in the log pane.",
    "Compare": "Overlays the marked runs' losses and HellaSwag.",
}

TMUX_NOTE = ("No binding needs ctrl+enter or shift+enter (tmux eats them); F-keys have ctrl-letter twins "
             "(F5 = ctrl+l) for terminals that swallow F-keys. ctrl+p opens the command palette; the theme "
             "follows Textual's themes (palette → Theme).")


KEY_NAMES = {"left_square_bracket": "[", "right_square_bracket": "]", "left_curly_bracket": "{",
             "right_curly_bracket": "}", "question_mark": "?", "escape": "esc", "delete": "del"}


def key_label(key: str) -> str:
    return KEY_NAMES.get(key.strip(), key.strip())


def bindings_table(title: str, bindings: list[Binding]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None,
                  padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for b in bindings:
        if b.description:
            keys = " / ".join(key_label(k) for k in b.key.split(","))
            table.add_row(keys, b.description)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close")]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__(classes="dialog")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box dialog-wide"):
            yield Label("gpt-console — keys", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                for title, bindings in self.sections:
                    yield Static(bindings_table(title, bindings))
                    note = SCREEN_NOTES.get(title.split("  (")[0])
                    if note:
                        yield Static(Text(note, style="italic dim"))
                    yield Static("")
                yield Static(Text(TMUX_NOTE, style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
