"""Config editor: a form generated from the schema and the raw TOML, kept in sync, validated as you type by the
trainer's validator, with the derived figures, a diff against the preset it came from, save / save as (comments
kept) and launch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.lazy import Lazy
from textual.widgets import Footer, Static, TabbedContent, TabPane, TextArea

from tui_trainer.app import format as fmt
from tui_trainer.app.config_doc import (SCHEMA, ConfigDocument, InputProblem, Validation, parse_field_input,
                                        preflight)
from tui_trainer.app.derived import Throughput, derived_lines, known_throughput
from tui_trainer.app.screens.dialogs import ConfirmDialog, OpenConfigDialog, PromptDialog
from tui_trainer.app.widgets.config_form import ConfigForm, FieldRow
from tui_trainer.training.lib.config import ConfigError, ConfigProblem, config_to_toml

TEXT_SYNC_DELAY = 0.3  # seconds of typing pause before the TOML view's text is re-parsed into the form


def problem_text(problems: list[ConfigProblem], warnings: list[ConfigProblem] = ()) -> Text:
    text = Text()
    for w in warnings:
        text.append(f"⚠ {w.key}: ", style="bold yellow")
        text.append(w.reason)
        if w.fix:
            text.append(f"\n  → {w.fix}", style="italic")
        text.append("\n")
    if not problems:
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

    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("f2", "save_as", "Save as"),
        Binding("ctrl+o", "open", "Open"),
        Binding("f5,ctrl+l", "launch", "Launch", priority=True),
        Binding("f6", "next_view", "Form/TOML/Diff"),
        Binding("escape", "back", "Runs"),
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

    # ---------------------------------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static(id="editor-title", classes="screen-title")
        with Horizontal(id="editor-body"):
            with TabbedContent("Form", "TOML", "Diff", id="editor-tabs"):
                with TabPane("Form", id="tab-form"):
                    yield ConfigForm(self._field_state, id="config-form")
                with TabPane("TOML", id="tab-toml"):
                    yield Lazy(TextArea.code_editor(self.doc.text, language="toml", id="toml-text"))
                with TabPane("Diff", id="tab-diff"):
                    with VerticalScroll():
                        yield Static(id="diff-view")
            with Vertical(id="editor-side"):
                yield Static(id="problems", classes="panel")
                yield Static(id="derived", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self._refresh_all(sync_form=False)
        self._find_throughput()

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
        warnings = preflight(self.validation.config) if self.validation.config is not None else []
        self.query_one("#problems", Static).update(problem_text(problems, warnings))
        self._show_derived()
        self.query_one("#diff-view", Static).update(diff_text(self.doc.diff()))
        self._show_title()

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
    def action_next_view(self) -> None:
        tabs = self.query_one(TabbedContent)
        order = ["tab-form", "tab-toml", "tab-diff"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else order[0]

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
        warnings = preflight(cfg)
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

        self.app.push_screen(ConfirmDialog("Launch this run?", body, confirm="Launch"), confirmed)

    @work(thread=True, exit_on_error=False, exclusive=True, group="launch")
    def _launch(self) -> None:
        name = self.doc.path.stem if self.doc.path else "edited"
        try:
            run = self.app.store.launch(toml_text=self.doc.text, name=name)
        except Exception as e:  # ConfigError / LaunchError carry a user-facing paragraph; anything else too
            self.app.call_from_thread(self.notify, f"Launch failed: {e}", severity="error", timeout=12)
            return
        self.app.call_from_thread(self.app.open_run, run.id)

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
