"""Runs: every run under the runs root, live. Open, launch new, stop, resume, delete, compare; name runs, note
them, filter the list by text. Fits 80 columns (fewer columns under 100)."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from tui_trainer.app import format as fmt
from tui_trainer.app.messages import RunsRefreshed
from tui_trainer.app.runs_model import COLUMNS, NARROW_COLUMNS, STATUS_STYLE, RunRow, environment_hint
from tui_trainer.app.screens.dialogs import ConfirmDialog
from tui_trainer.app.screens.run_label import RunLabelDialog
from tui_trainer.app.widgets.run_panels import first_paragraph
from tui_trainer.runs.labels import write_label

REFRESH_SECONDS = 1.0
NARROW_BELOW = 100  # columns: fewer table columns under this width


class RunsScreen(Screen):
    """The home screen."""

    BINDINGS = [
        # Help and Quit first: a narrow footer cuts from the right.
        Binding("f1,question_mark", "app.help", "Help"),
        Binding("ctrl+q", "app.quit", "Quit"),
        Binding("enter", "open_run", "Open", show=False),
        Binding("n", "new_run", "New"),
        Binding("o", "open_config", "Open config", show=False),
        Binding("e", "edit_run_config", "Edit as new"),
        Binding("slash", "filter", "Filter"),
        Binding("a", "label", "Name/note"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("d,delete", "delete", "Delete"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.all_rows: list[RunRow] = []       # every run, newest first
        self.rows: dict[str, RunRow] = {}      # the ones shown (the filter applied), in table order
        self.marked: set[str] = set()
        self.query_text = ""
        self.columns: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title", classes="screen-title")
        yield Input(placeholder="filter: words in the id, name, note or status (Esc clears)",
                    id="runs-filter")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="run-detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self._set_columns()
        self.query_one(DataTable).focus()  # not the (hidden) filter box: keys are commands here
        self._show_title()
        self._show_empty()
        self._refresher()

    def _set_columns(self) -> None:
        width = self.size.width or self.app.size.width
        wanted = NARROW_COLUMNS if width < NARROW_BELOW else COLUMNS
        if wanted == self.columns:
            return
        self.columns = wanted
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column("", key="mark", width=1)
        for name in wanted:
            table.add_column(name, key=name)
        shown, self.rows = self.rows, {}
        self._fill(list(shown.values()))

    def on_resize(self, event) -> None:
        self._set_columns()

    def _show_title(self) -> None:
        total, shown = len(self.all_rows), len(self.rows)
        root = fmt.path(self.app.store.root) + "/"
        title = Text.assemble(("Runs", "bold"), ("  in ", "dim"), (root, "bold cyan"),
                              (f"  {total} run{'s' if total != 1 else ''}", "dim"))
        if self.query_text:
            title.append(f"  · filter “{self.query_text}”: {shown} shown", style="yellow")
        title.append("   Enter open · n new · / filter · a name · ? help", style="dim")
        title.no_wrap, title.overflow = True, "ellipsis"
        self.query_one("#runs-title", Static).update(title)

    def _show_empty(self) -> None:
        if self.rows:
            return
        if self.all_rows:
            text = Text(f"No run matches “{self.query_text}”. Esc in the filter box (or /, then Esc) shows "
                        "every run.", style="dim")
        else:
            text = Text("No runs yet. Press n to open the default config and launch one (F5 in the editor), "
                        "or o to open any TOML config.", style="dim")
        self.query_one("#run-detail", Static).update(text)

    # ----------------------------------------------------------------------------------------- refresh
    @work(thread=True, exit_on_error=False, exclusive=True, group="runs-refresh")
    def _refresher(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            if not self.is_current and self.all_rows:  # hidden under a dashboard or editor: nothing to show
                time.sleep(0.2)
                continue
            try:
                rows = self.app.runs_model.refresh()
            except Exception as e:  # an unreadable runs root: say so, keep trying
                self.app.call_from_thread(self.notify, f"Cannot read runs in {self.app.store.root}: {e}",
                                          severity="error")
                rows = None
            if rows is not None:
                self.post_message(RunsRefreshed(rows))
            deadline = time.monotonic() + REFRESH_SECONDS
            while not worker.is_cancelled and time.monotonic() < deadline:
                time.sleep(0.05)

    def refresh_now(self) -> None:
        self.post_message(RunsRefreshed(self.app.runs_model.refresh()))

    @on(RunsRefreshed)
    def show_rows(self, message: RunsRefreshed) -> None:
        self.all_rows = list(message.rows)
        self.marked &= {row.run_id for row in self.all_rows}
        self._fill([row for row in self.all_rows if row.matches(self.query_text)])

    def _fill(self, rows: list[RunRow]) -> None:
        table = self.query_one(DataTable)
        new = {row.run_id: row for row in rows}
        if list(new) != list(self.rows):
            selected = self.selected_id()
            table.clear()
            for row in rows:
                table.add_row(*self._cells(row), key=row.run_id)
            if selected in new:
                table.move_cursor(row=list(new).index(selected))
        else:
            for row in rows:
                if self.rows.get(row.run_id) != row:
                    for column, cell in zip(("mark",) + self.columns, self._cells(row)):
                        table.update_cell(row.run_id, column, cell, update_width=True)
        self.rows = new
        self._show_title()
        self._show_detail()
        self.refresh_bindings()

    def _cells(self, row: RunRow) -> tuple[Any, ...]:
        mark = Text("✓", style="bold yellow") if row.run_id in self.marked else ""
        values = {"run": Text(row.title, style="bold" if row.name else ""),
                  "status": Text(row.status_label, style=STATUS_STYLE.get(row.state, "")),
                  "step": row.step, "loss": row.loss, "best val": row.best_val, "HellaSwag": row.hellaswag,
                  "tok/s": row.tok_per_s, "age": row.age}
        return (mark, *(values[name] for name in self.columns))

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()
        self.refresh_bindings()  # s and r are offered for the highlighted run only where they work

    def _show_detail(self) -> None:
        row = self.rows.get(self.selected_id() or "")
        if row is None:
            self._show_empty()
            return
        text = Text.assemble((row.run_id, "bold"), "  ", (row.status_label, STATUS_STYLE.get(row.state, "")))
        if row.name:
            text.append(f"  “{row.name}”", style="bold")
        text.append(f"\nstep {row.step} · loss {row.loss} · best val {row.best_val} · "
                    f"HellaSwag {row.hellaswag} · tok/s {row.tok_per_s}", style="dim")
        if row.note:
            text.append(f"\n{row.note}", style="italic")
        reason = first_paragraph(row.reason)
        failed = row.state in ("failed", "lost")
        if reason:
            text.append(f"\n{reason}", style="red" if failed else "")
        if failed or row.state == "stopped":
            if row.resume_from is not None:
                text.append(f"\nr resumes it from the checkpoint at step {row.resume_from:,}.",
                            style="italic")
            elif failed:
                text.append("\nNo checkpoint to resume from: e edits its config as a new run.",
                            style="italic")
            hint = environment_hint(reason) if failed else ""
            if hint:
                text.append(f" {hint}", style="italic")
        if self.marked:
            text.append(f"\n{len(self.marked)} marked for compare: {', '.join(sorted(self.marked))}", style="yellow")
        self.query_one("#run-detail", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop", "resume"):
            row = self.rows.get(self.selected_id() or "")
            if row is None:
                return False
            return row.running if action == "stop" else row.resume_from is not None
        return True

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def _selected_row(self) -> RunRow | None:
        row = self.rows.get(self.selected_id() or "")
        if row is None:
            self.notify("No run selected. Press n to start one.", severity="warning")
        return row

    # ----------------------------------------------------------------------------------------- actions
    @on(DataTable.RowSelected)
    def action_open_run(self) -> None:
        row = self._selected_row()
        if row is not None:
            self.app.open_run(row.run_id)

    def action_new_run(self) -> None:
        self.app.open_default_config()

    def action_open_config(self) -> None:
        self.app.action_open_config()

    def action_edit_run_config(self) -> None:
        row = self._selected_row()
        if row is not None:
            self.app.open_run_config(row.run_id)

    def action_mark(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        self.marked ^= {row.run_id}
        self.query_one(DataTable).update_cell(row.run_id, "mark", self._cells(row)[0])
        self._show_detail()

    def action_compare(self) -> None:
        ids = sorted(self.marked) or ([self.selected_id()] if self.selected_id() else [])
        if len(ids) < 2:
            self.notify("Mark two or more runs with space, then press c to overlay their charts.",
                        severity="warning")
            return
        self.app.open_compare(ids)

    def action_stop(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        if not row.running:
            self.notify(f"{row.run_id} is not running ({row.status_label}).", severity="warning")
            return
        self.app.confirm_stop(row.run_id)

    def action_resume(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        if row.resume_from is None:  # the palette reaches this even where the key is not offered
            self.notify(f"{row.run_id} has nothing to resume ({row.status_label}, no checkpoint to continue "
                        "from). e edits its config as a new run.", severity="warning")
            return
        self.app.resume_run(row.run_id)

    # ------------------------------------------------------------------------------- filter and labels
    def action_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self._fill([row for row in self.all_rows if row.matches(self.query_text)])

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def on_key(self, event) -> None:
        box = self.query_one("#runs-filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.value = ""
            box.remove_class("-shown")
            self.query_one(DataTable).focus()
        elif event.key == "down" and box.has_focus:
            event.stop()
            self.query_one(DataTable).focus()

    def action_label(self) -> None:
        row = self._selected_row()
        if row is None:
            return

        def chosen(values: tuple[str, str] | None) -> None:
            if values is not None:
                self._save_label(row.run_id, *values)

        self.app.push_screen(RunLabelDialog(row.run_id, row.name, row.note), chosen)

    @work(thread=True, exit_on_error=False, group="runs-label")
    def _save_label(self, run_id: str, name: str, note: str) -> None:
        try:
            write_label(self.app.store.get(run_id).dir, name, note)
        except Exception as e:  # noqa: BLE001 - a vanished run, a read-only disk: one sentence
            self.app.call_from_thread(self.notify, f"Could not save the name/note of {run_id}: {e}",
                                      severity="error", timeout=8)
            return
        self.app.call_from_thread(self.refresh_now)

    def action_delete(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        if row.running:
            self.notify(f"{row.run_id} is running; stop it first (s). A running run is never deleted.",
                        severity="error")
            return
        body = Text.assemble("Delete ", (row.run_id, "bold"), " and everything in it: event log, trainer log, ",
                             "checkpoints, config?\n\nThis cannot be undone.")

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._delete(row.run_id)

        self.app.push_screen(ConfirmDialog("Delete run?", body, confirm="Delete", danger=True), confirmed)

    @work(thread=True, exit_on_error=False, group="runs-delete")
    def _delete(self, run_id: str) -> None:
        try:
            self.app.store.delete(run_id)  # refuses a running run itself, whatever this table thought
        except Exception as e:
            self.app.call_from_thread(self.notify, str(e), severity="error", timeout=8)
            return
        self.app.call_from_thread(self.notify, f"Deleted {run_id}.")
        self.app.call_from_thread(self.refresh_now)

    def palette_commands(self) -> list[tuple[str, str, Any]]:
        return [
            ("Open run", "Open the selected run's dashboard", self.action_open_run),
            ("Compare marked runs", "Overlay the loss and HellaSwag charts of the marked runs", self.action_compare),
            ("Stop run", "Stop the selected run (it checkpoints first)", self.action_stop),
            ("Resume run", "Continue the selected run from its newest checkpoint", self.action_resume),
            ("Delete run", "Delete the selected run's directory (asks first)", self.action_delete),
            ("Edit run config as a new run", "The selected run's config in the editor, unsaved",
             self.action_edit_run_config),
            ("Name / note the run", "A display name and a one-line note for the selected run",
             self.action_label),
            ("Filter runs", "Show only runs whose id, name, note or status contain the words typed",
             self.action_filter),
        ]
