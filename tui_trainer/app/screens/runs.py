"""Runs: every run under the runs root, live. Open, launch new, stop, resume, delete, compare."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from tui_trainer.app import format as fmt
from tui_trainer.app.messages import RunsRefreshed
from tui_trainer.app.runs_model import COLUMNS, STATUS_STYLE, RunRow
from tui_trainer.app.screens.dialogs import ConfirmDialog

REFRESH_SECONDS = 1.0


class RunsScreen(Screen):
    """The home screen."""

    BINDINGS = [
        Binding("enter", "open_run", "Open", show=False),
        Binding("n", "new_run", "New run"),
        Binding("o", "open_config", "Open config"),
        Binding("e", "edit_run_config", "Edit config"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("d,delete", "delete", "Delete"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, RunRow] = {}
        self.marked: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title", classes="screen-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="run-detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("", key="mark", width=1)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.query_one("#runs-title", Static).update(Text.assemble(
            ("Runs ", "bold"), (fmt.path(self.app.store.root), "bold cyan"),
            ("   Enter open · n new · space mark · c compare · ? help", "dim")))
        self._show_empty()
        self._refresher()

    def _show_empty(self) -> None:
        if not self.rows:
            self.query_one("#run-detail", Static).update(Text(
                "No runs yet. Press n to open the default config and launch one (F5 in the editor), "
                "or o to open any TOML config.", style="dim"))

    # ----------------------------------------------------------------------------------------- refresh
    @work(thread=True, exit_on_error=False, exclusive=True, group="runs-refresh")
    def _refresher(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            if not self.is_current and self.rows:  # hidden under a dashboard or editor: nothing to show
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
        table = self.query_one(DataTable)
        new = {row.run_id: row for row in message.rows}
        if list(new) != list(self.rows):
            selected = self.selected_id()
            table.clear()
            for row in message.rows:
                table.add_row(*self._cells(row), key=row.run_id)
            if selected in new:
                table.move_cursor(row=list(new).index(selected))
        else:
            for row in message.rows:
                if self.rows.get(row.run_id) != row:
                    for column, cell in zip(("mark",) + COLUMNS, self._cells(row)):
                        table.update_cell(row.run_id, column, cell)
        self.rows = new
        self.marked &= set(new)
        self._show_detail()

    def _cells(self, row: RunRow) -> tuple[Any, ...]:
        mark = Text("✓", style="bold yellow") if row.run_id in self.marked else ""
        status = Text(row.status_label, style=STATUS_STYLE.get(row.state, ""))
        return (mark, row.run_id, status, row.step, row.loss, row.best_val, row.hellaswag, row.tok_per_s, row.age)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        row = self.rows.get(self.selected_id() or "")
        if row is None:
            self._show_empty()
            return
        text = Text.assemble((row.run_id, "bold"), "  ", (row.status_label, STATUS_STYLE.get(row.state, "")))
        if row.reason:
            text.append(f"\n{row.reason}", style="red" if row.state in ("failed", "lost") else "")
        if self.marked:
            text.append(f"\n{len(self.marked)} marked for compare: {', '.join(sorted(self.marked))}", style="yellow")
        self.query_one("#run-detail", Static).update(text)

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
        if row is not None:
            self.app.resume_run(row.run_id)

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
            ("Edit run config", "Open the selected run's config in the editor", self.action_edit_run_config),
        ]
