"""Config editor: a form generated from the schema and the raw TOML, kept in sync, validated as you type by the
trainer's validator, with the derived figures, a diff against the preset it came from, save / save as (comments
kept) and launch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.lazy import Lazy
from textual.widgets import Footer, Static, TabbedContent, TabPane, TextArea
from textual.widgets.text_area import Selection

from tui_trainer.app import format as fmt
from tui_trainer.app.config_doc import (SCHEMA, ConfigDocument, InputProblem, Validation, parse_field_input,
                                        preflight)
from tui_trainer.app.derived import Throughput, derived_lines, known_throughput
from tui_trainer.app.machine import Machine
from tui_trainer.app.machine import probe as probe_machine
from tui_trainer.app.preflight import machine_problems
from tui_trainer.app.screens.dialogs import ConfirmDialog, KeySearchDialog, OpenConfigDialog, PromptDialog
from tui_trainer.app.widgets.config_form import ConfigForm, FieldRow
from tui_trainer.training.lib.config import ConfigError, ConfigProblem, config_to_toml

TEXT_SYNC_DELAY = 0.3  # seconds of typing pause before the TOML view's text is re-parsed into the form
NARROW_WIDTH = 110  # columns: below this the 52-column side panel folds into a status line
WIDE_WIDTH = 180    # columns: from this on the side panel widens
TALL_HEIGHT = 40    # rows: from this on the side panel also shows the diff against the preset


def status_line(problems: list[ConfigProblem], warnings: list[ConfigProblem]) -> Text:
    """The checks in one line, for screens too narrow for the side panel."""
    if problems:
        first = problems[0]
        text = Text(f"✗ {len(problems)} problem{'s' if len(problems) != 1 else ''}: ", style="bold red")
        text.append(f"{first.key or 'file'}: {first.reason}")
    elif warnings:
        text = Text(f"⚠ {len(warnings)} warning{'s' if len(warnings) != 1 else ''}: ", style="bold yellow")
        text.append(f"{warnings[0].key}: {warnings[0].reason}")
    else:
        text = Text("✓ valid — the trainer will accept this config", style="bold green")
    text.append("  (F7: checks)", style="dim")
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def syntax_text(doc: ConfigDocument, *, in_toml_view: bool) -> Text:
    """Where the text fails to parse, and what to do; shown in place of the form and above the TOML view."""
    problem = doc.validate().problems[0]
    at = doc.syntax_at
    where = f"line {at[0]}, column {at[1]}" if at else "somewhere in the file"
    text = Text(f"✗ The TOML does not parse ({where}).", style="bold red")
    reason = re.sub(r" at line \d+ col \d+$", "", problem.reason.removeprefix("TOML syntax error: "))
    text.append(f" {reason}.")
    if in_toml_view:
        text.append("  The marked line is where the parser stopped.", style="italic")
    else:
        text.append("\nThe form is hidden until it does: its values would be defaults, not this file's. "
                    "F6 opens the TOML view at that line.", style="italic")
    return text


def problem_text(problems: list[ConfigProblem], warnings: list[ConfigProblem] = ()) -> Text:
    text = Text()
    if warnings:
        text.append(f"⚠ {len(warnings)} warning{'s' if len(warnings) != 1 else ''} for this machine\n",
                    style="bold yellow")
    for w in warnings:
        text.append(f"⚠ {w.key}: ", style="bold yellow")
        text.append(w.reason)
        if w.fix:
            text.append(f"\n  → {w.fix}", style="italic")
        text.append("\n")
    if not problems:
        if warnings:
            text.append("The trainer's validator accepts this config, but it would not run well here "
                        "(above).", style="yellow")
        else:
            text.append("✓ valid — the trainer will accept this config", style="bold green")
        return text
    text.append(f"✗ {len(problems)} problem{'s' if len(problems) != 1 else ''}\n", style="bold red")
    for p in problems:
        text.append(f"• {p.key or 'file'}: ", style="bold red")
        text.append(p.reason)
        if p.fix:
            text.append(f"\n  → {p.fix}", style="italic")
        text.append("\n")
    return text


def derived_table(rows: list[tuple[str, str]], stale: bool) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(style="dim" if stale else "")
    for label, value in rows:
        table.add_row(label, value)
    return table


def diff_text(diff: str) -> Text:
    if not diff:
        return Text("No changes from the preset this config came from.", style="dim")
    text = Text()
    for line in diff.splitlines():
        style = ("bold" if line.startswith(("+++", "---")) else "green" if line.startswith("+")
                 else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        text.append(line + "\n", style=style)
    return text


class EditorScreen(Screen):
    """Edit one TOML config."""

    # Footer words are short so that, with Help, they fit an 80-column terminal.
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("f2", "save_as", "Save as", show=False),
        Binding("ctrl+o", "open", "Open", show=False),
        Binding("f5,ctrl+l", "launch", "Launch", priority=True),
        Binding("f6", "next_view", "View", tooltip="Form → TOML → Diff"),
        Binding("ctrl+f", "find_key", "Find", tooltip="Jump to a config key by name"),
        Binding("f7", "toggle_checks", "Checks"),
        Binding("escape", "back", "Runs"),
        # Priority: focus moves before the next key is handed to a widget. As a plain binding, Tab reaches
        # the screen only after bubbling up from the focused input, so characters typed right after it landed
        # in the previous field (or in no field at all).
        Binding("tab", "focus_step(1)", "Next field", show=False, priority=True),
        Binding("shift+tab", "focus_step(-1)", "Previous field", show=False, priority=True),
    ]

    def __init__(self, doc: ConfigDocument) -> None:
        super().__init__()
        self.doc = doc
        self.validation: Validation = doc.validate()
        self._last_good = self.validation.lenient
        self._input_problems: dict[str, ConfigProblem] = {}
        self._throughput: Throughput | None = None
        self._text_timer = None
        self._problems_by_key: dict[str, list[ConfigProblem]] = {}
        self._machine: Machine | None = None

    # ---------------------------------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static(id="editor-title", classes="screen-title")
        yield Static(id="editor-status")  # the checks in one line, for the side panel on narrow screens
        with Horizontal(id="editor-body"):
            with TabbedContent("Form", "TOML", "Diff", id="editor-tabs"):
                with TabPane("Form", id="tab-form"):
                    yield Static(id="form-syntax")
                    yield ConfigForm(self._field_state, id="config-form")
                with TabPane("TOML", id="tab-toml"):
                    yield Static(id="toml-error")
                    yield Lazy(TextArea.code_editor(self.doc.text, language="toml", id="toml-text"))
                with TabPane("Diff", id="tab-diff"):
                    with VerticalScroll():
                        yield Static(id="diff-view")
            with Vertical(id="editor-side"):
                yield Static(id="problems", classes="panel")
                yield Static(id="derived", classes="panel")
                with VerticalScroll(id="side-diff", classes="panel"):  # where the screen has rows to spare
                    yield Static(id="side-diff-text")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#side-diff").border_title = "Changes from the preset"
        self._refresh_all(sync_form=False)
        self._find_throughput()
        self._probe_machine()
        self._fit_width(self.app.size.width, self.app.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_width(event.size.width, event.size.height)

    def _fit_width(self, width: int, height: int | None = None) -> None:
        """Below NARROW_WIDTH the side panel would leave the form no room for values: it folds into one status
        line (F7 opens it in place of the form); from WIDE_WIDTH on it widens; from TALL_HEIGHT rows it also
        shows the changes against the preset under the derived figures."""
        height = self.app.size.height if height is None else height
        self.set_class(width < NARROW_WIDTH, "-narrow")
        self.set_class(width >= WIDE_WIDTH, "-wide")
        self.set_class(height >= TALL_HEIGHT, "-tall")

    def _field_state(self, key: str) -> tuple[Any, bool, list[ConfigProblem]]:
        value, set_in_file = self.doc.value(key) if self.doc.parsed else (SCHEMA[key].default, False)
        return value, set_in_file, self._problems_by_key.get(key, [])

    # ------------------------------------------------------------------------------------ form → text
    @on(FieldRow.Edited)
    def field_edited(self, event: FieldRow.Edited) -> None:
        spec = SCHEMA[event.key]
        value: Any = event.value
        if isinstance(value, str) and spec.type is not str:
            try:
                value = parse_field_input(spec, value)
            except InputProblem as e:
                self._input_problems[event.key] = e.problem
                self._refresh_all(sync_form=False)
                return
        had_problem = self._input_problems.pop(event.key, None) is not None
        if self.doc.value(event.key)[0] == value:
            # Nothing to write: the echo of a value the form was just shown (every input sends one when it is
            # mounted), or a retyped identical value. Redraw only if an entry problem just went away.
            if had_problem:
                self._refresh_all(sync_form=False)
            return
        if not self.doc.set_value(event.key, value):
            self.notify("The TOML view has a syntax error; fix it there first.", severity="error")
            return
        for area in self.query("#toml-text").results(TextArea):  # absent until its lazy mount
            if area.text != self.doc.text:
                area.load_text(self.doc.text)
        self._refresh_all(sync_form=False)

    # ------------------------------------------------------------------------------------ text → form
    @on(TextArea.Changed, "#toml-text")
    def text_changed(self, event: TextArea.Changed) -> None:
        if event.text_area.text == self.doc.text:
            return
        if self._text_timer is not None:
            self._text_timer.stop()
        self._text_timer = self.set_timer(TEXT_SYNC_DELAY, self._apply_text)

    def _apply_text(self) -> None:
        self._text_timer = None
        areas = list(self.query("#toml-text").results(TextArea))
        text = areas[0].text if areas else self.doc.text
        if text != self.doc.text:
            self.doc.set_text(text)
            self._input_problems.clear()
            self._refresh_all(sync_form=True)

    def flush_text(self) -> None:
        """Apply a pending TOML-view edit now (before saving or launching)."""
        if self._text_timer is not None:
            self._text_timer.stop()
            self._apply_text()

    # ---------------------------------------------------------------------------------------- refresh
    def _refresh_all(self, *, sync_form: bool) -> None:
        self.validation = self.doc.validate()
        if self.validation.lenient is not None:
            self._last_good = self.validation.lenient
        problems = list(self._input_problems.values()) + [
            p for p in self.validation.problems if p.key not in self._input_problems]
        by_key: dict[str, list[ConfigProblem]] = {}
        for p in problems:
            by_key.setdefault(p.key, []).append(p)
        self._problems_by_key = by_key
        form = self.query_one(ConfigForm)
        for row in form.rows():
            value, set_in_file = self.doc.value(row.spec.key) if self.doc.parsed else (None, row.set_in_file)
            if sync_form and self.doc.parsed:
                row.show_value(value, set_in_file)
            row.show_state(set_in_file, by_key.get(row.spec.key, []))
        warnings = self._warnings(self.validation.config) if self.validation.config is not None else []
        self.query_one("#problems", Static).update(problem_text(problems, warnings))
        self.query_one("#editor-status", Static).update(status_line(problems, warnings))
        self._show_syntax()
        self._show_derived()
        diff = diff_text(self.doc.diff())
        self.query_one("#diff-view", Static).update(diff)
        self.query_one("#side-diff-text", Static).update(diff)
        self._show_title()

    def _warnings(self, cfg) -> list[ConfigProblem]:
        """Preflight: local files the config names, then this machine (once probed) against the config."""
        return preflight(cfg) + machine_problems(cfg, self._machine)

    @work(thread=True, exit_on_error=False, exclusive=True, group="machine")
    def _probe_machine(self) -> None:
        found = probe_machine()  # nvidia-smi may take a second: never on the UI thread
        self.app.call_from_thread(self._set_machine, found)

    def _set_machine(self, found: Machine) -> None:
        self._machine = found
        self._refresh_all(sync_form=False)

    def _show_syntax(self) -> None:
        """While the text does not parse, the form is hidden (its values would be defaults, not the file's)
        and both views say where the error is."""
        broken = not self.doc.parsed
        self.query_one(ConfigForm).display = not broken
        for banner in self.query("#form-syntax, #toml-error").results(Static):
            banner.display = broken
            if broken:
                banner.update(syntax_text(self.doc, in_toml_view=banner.id == "toml-error"))

    def _show_derived(self) -> None:
        panel = self.query_one("#derived", Static)
        cfg, fresh = self.validation.lenient, True
        if cfg is None:  # the text does not parse: keep showing what it last meant
            cfg, fresh = self._last_good, False
        if cfg is None:
            panel.update(Text("Derived figures appear once the TOML parses.", style="dim"))
            return
        note = "" if self.validation.ok else " (of the values that pass their own checks)" if fresh else \
            " (last readable text)"
        body = derived_table(derived_lines(cfg, self._throughput), not fresh)
        panel.update(Group(Text("Derived" + note, style="bold"), body))

    def _show_title(self) -> None:
        doc = self.doc
        name = fmt.path(doc.path) if doc.path else "(new config)"
        text = Text.assemble(("Config ", "bold"), (name, "bold cyan"))
        if doc.dirty:
            text.append("  ● modified", style="yellow")
        if doc.origin_path and doc.origin_path != doc.path:
            text.append(f"  from {fmt.path(doc.origin_path)}", style="dim")
        self.query_one("#editor-title", Static).update(text)

    @work(thread=True, exit_on_error=False, exclusive=True, group="throughput")
    def _find_throughput(self) -> None:
        """Look for an earlier run of the same shape (its tok/s gives the duration estimate)."""
        cfg = self.validation.lenient or self._last_good
        model = getattr(self.app, "runs_model", None)
        if cfg is None or model is None:
            return
        try:
            model.refresh()
            found = known_throughput(cfg, model.summaries())
        except Exception:  # an unreadable run directory must not break the editor
            return
        if found is not None:
            self.app.call_from_thread(self._set_throughput, found)

    def _set_throughput(self, found: Throughput) -> None:
        self._throughput = found
        self._show_derived()

    # ---------------------------------------------------------------------------------------- actions
    def action_focus_step(self, direction: int) -> None:
        focused = self.focused
        if isinstance(focused, TextArea) and focused.tab_behavior == "indent" and direction > 0:
            raise SkipAction()  # Tab indents in the TOML view; Shift-Tab still leaves it
        if direction > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def action_next_view(self) -> None:
        tabs = self.query_one(TabbedContent)
        order = ["tab-form", "tab-toml", "tab-diff"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else order[0]
        self._focus_view(tabs.active)

    @on(TabbedContent.TabActivated, "#editor-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-toml":  # by F6 or a click: the text takes the keys, at the error if any
            self._focus_view("tab-toml")

    def _focus_view(self, pane: str, attempts: int = 20) -> None:
        if pane == "tab-form":
            self.query_one(ConfigForm).focus()
            return
        if pane != "tab-toml":
            return
        areas = list(self.query("#toml-text").results(TextArea))
        if not areas:  # mounted lazily, a frame after its tab is first shown
            if attempts:
                self.call_after_refresh(self._focus_view, pane, attempts - 1)
            return
        area = areas[0]
        area.focus()
        if self.doc.syntax_at is not None:
            line = min(max(self.doc.syntax_at[0] - 1, 0), area.document.line_count - 1)
            area.selection = Selection((line, 0), (line, len(area.document.get_line(line))))  # marks the line
            area.scroll_cursor_visible(center=True)

    def action_toggle_checks(self) -> None:
        """On a narrow screen, show the problems and derived figures in place of the form, and back."""
        if not self.has_class("-narrow"):
            self.notify("The checks are on the right; they fold into one line below 110 columns.", timeout=4)
            return
        self.toggle_class("-checks-open")

    def action_find_key(self) -> None:
        def chosen(key: str | None) -> None:
            if key:
                self.jump_to_key(key)

        self.app.push_screen(KeySearchDialog([(spec.key, spec.help) for spec in SCHEMA.values()]), chosen)

    def jump_to_key(self, key: str) -> None:
        """Show the form at ``key`` with its input focused."""
        if not self.doc.parsed:
            self.notify("The form is hidden while the TOML does not parse: F6 shows the error.",
                        severity="warning", timeout=5)
            return
        self.remove_class("-checks-open")
        self.query_one(TabbedContent).active = "tab-form"
        form = self.query_one(ConfigForm)
        if not form.ready:
            self.call_after_refresh(self.jump_to_key, key)
            return
        row = form.row(key)
        target = next(iter(row.query("Input, Select, Switch")), row)
        target.focus()
        self.call_after_refresh(form.scroll_to_widget, row, top=True, animate=False)

    def action_back(self) -> None:
        self.app.action_show_runs()

    def action_save(self) -> None:
        self.flush_text()
        if self.doc.path is None:
            self.action_save_as()
            return
        self._save(self.doc.path)

    def action_save_as(self) -> None:
        self.flush_text()
        suggestion = str(self.doc.path) if self.doc.path else "configs/my-config.toml"

        def chosen(path: str | None) -> None:
            if path:
                self._save(Path(path))

        self.app.push_screen(PromptDialog("Save config as", value=suggestion, hint="Any path; .toml recommended."),
                             chosen)

    def _save(self, path: Path) -> None:
        try:
            written = self.doc.save(path)
        except (OSError, ConfigError) as e:
            self.notify(f"Could not save {path}: {e}. Pick another path (save as: F2).", severity="error",
                        timeout=8)
            return
        self._refresh_all(sync_form=False)
        note = "" if self.validation.ok else " (it still has problems the trainer will refuse)"
        self.notify(f"Saved {written}{note}.", severity="warning" if note else "information")

    def action_open(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.app.open_config(path)

        self.app.push_screen(OpenConfigDialog(self.app.presets()), chosen)

    def action_launch(self) -> None:
        self.flush_text()
        validation = self.doc.validate()
        if not validation.ok or self._input_problems:
            count = len(validation.problems) + len(self._input_problems)
            self.notify(f"This config has {count} problem(s); the trainer would refuse it. They are listed on the "
                        "right — fix them, then launch.", severity="error", timeout=8)
            return
        cfg = validation.config
        assert cfg is not None
        warnings = self._warnings(cfg)
        body = Group(
            Text("The run starts in the background and keeps going if you close the console.\n", style="italic"),
            problem_text([], warnings) if warnings else Text(""),
            derived_table(derived_lines(cfg, self._throughput), False),
            Text("\nResolved config:\n", style="bold"),
            Text(config_to_toml(cfg, comments=False)),
        )

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._launch()

        title = "Launch this run?" if not warnings else \
            f"Launch despite {len(warnings)} warning{'s' if len(warnings) != 1 else ''} for this machine?"
        self.app.push_screen(ConfirmDialog(title, body, confirm="Launch"), confirmed)

    @work(thread=True, exit_on_error=False, exclusive=True, group="launch")
    def _launch(self) -> None:
        name = self.doc.path.stem if self.doc.path else "edited"
        try:
            run = self.app.store.launch(toml_text=self.doc.text, name=name)
        except Exception as e:  # ConfigError / LaunchError carry a user-facing paragraph; anything else too
            self.app.call_from_thread(self.notify, f"Launch failed: {e}", severity="error", timeout=12)
            return
        self.app.call_from_thread(self.app.open_launched_run, run.id, self)

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("Save config", "Write the TOML (comments kept)", self.action_save),
            ("Save config as…", "Write the TOML to another path", self.action_save_as),
            ("Launch run", "Validate, confirm and start a torchrun run of this config", self.action_launch),
            ("Show diff", "Changes against the preset this config came from",
             lambda: setattr(self.query_one(TabbedContent), "active", "tab-diff")),
            ("Show TOML", "The raw TOML text", lambda: setattr(self.query_one(TabbedContent), "active", "tab-toml")),
            ("Show form", "The form", lambda: setattr(self.query_one(TabbedContent), "active", "tab-form")),
        ]
