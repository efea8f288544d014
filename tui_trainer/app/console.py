"""The gpt-console Textual app: screens, navigation, the command palette, and actions shared by screens.

Never imports torch (the trainer runs in its own torchrun processes). Closing the app never stops a run: runs
live in their own sessions, and nothing here signals them on exit.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from tui_trainer.app.config_doc import ConfigDocument
from tui_trainer.app.run_watch import NOTIFY_ENV, NOTIFY_MODES, RunEnded, RunWatcher, notify_mode
from tui_trainer.app.runs_model import RunsModel
from tui_trainer.app.screens.dialogs import ConfirmDialog, OpenConfigDialog
from tui_trainer.app.screens.help import HelpScreen
from tui_trainer.runs import RunStore
from tui_trainer.training.lib.config import ConfigError, TrainingConfig, config_to_toml

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_PRESETS = ("default.toml", "gpt2-124m.toml")  # the first one found is what "new run" opens
PARKED_EDITOR = "parked-editor"
WATCH_SECONDS = 2.0  # how often the app looks for runs that ended (for the toast when elsewhere)
NOTIFY_WORDS = {"bell": "toast and terminal bell", "toast": "toast only", "off": "say nothing"}


class GptConsole(App):
    """Edit configs, launch and control torchrun runs, and watch them live."""

    CSS_PATH = Path(__file__).with_name("console.tcss")  # absolute: subclasses live elsewhere
    TITLE = "gpt-console"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
        Binding("q", "quit", "Quit", show=False),
        # Not Textual's "press ctrl+q" hint: over SSH people reach for Ctrl-C. Text inputs keep it for copying.
        Binding("ctrl+c", "quit", "Quit", show=False),
        Binding("f3", "show_runs", "Runs", show=False),
        Binding("f4", "back_to_editor", "Config editor", show=False),
    ]

    def __init__(self, config_path: str | None = None, runs_root: str | None = None) -> None:
        super().__init__()
        self.config_path = config_path
        self.store = RunStore(runs_root)
        self.runs_model = RunsModel(self.store)
        self.run_watcher = RunWatcher()
        self.notify_mode = notify_mode()  # bell / toast / off (GPT_CONSOLE_NOTIFY; the palette switches it)
        # The editor a launch left with unsaved edits (the run has its own copy); F4 returns to it, and
        # quitting or opening another config asks about it first.
        self.parked_editor: Screen | None = None

    def on_mount(self) -> None:
        self._watch_runs()
        # Installed, not pushed: with a config to open, the editor alone makes the first frame (fast start);
        # the runs screen is composed the first time it is shown and kept afterwards.
        if not (self.config_path and self.open_config(self.config_path)):
            self.push_screen(self.runs_screen())

    def runs_screen(self) -> Screen:
        """The runs screen, installed on first use: its modules pull in numpy, which the editor's first frame
        does not need (the README's command opens the editor; see docs/benchmarks.md, start-up)."""
        if not self.is_screen_installed("runs"):
            from tui_trainer.app.screens.runs import RunsScreen
            self.install_screen(RunsScreen(), name="runs")
        return self.get_screen("runs")

    def _on_runs_screen(self) -> bool:
        return self.is_screen_installed("runs") and self.screen is self.get_screen("runs")

    # ------------------------------------------------------------------------------- run notifications
    @work(thread=True, exit_on_error=False, exclusive=True, group="run-watch")
    def _watch_runs(self) -> None:
        """Every few seconds: did a run end? (The runs table shows it; elsewhere a toast says it.)"""
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                ended = self.run_watcher.look(self.runs_model.refresh())
            except Exception:  # noqa: BLE001 - an unreadable runs root is the runs screen's to report
                ended = []
            for run in ended:
                self.call_from_thread(self._run_ended, run)
            deadline = time.monotonic() + WATCH_SECONDS
            while not worker.is_cancelled and time.monotonic() < deadline:
                time.sleep(0.1)

    def _run_ended(self, run: RunEnded) -> None:
        screen = self.screen
        if self.notify_mode == "off" or self._on_runs_screen() or \
                getattr(getattr(screen, "run", None), "id", None) == run.run_id:
            return  # the table or the run's own dashboard shows it already
        self.notify(run.message(), title="Run ended", severity=run.severity, timeout=12)
        if self.notify_mode == "bell":
            self.bell()

    def set_notify_mode(self, mode: str) -> None:
        self.notify_mode = mode
        self.notify(f"When a run ends elsewhere: {NOTIFY_WORDS[mode]} (for this session; "
                    f"{NOTIFY_ENV}={mode} makes it stick).", timeout=5)

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = False) -> None:
        # Messages quote user text (TOML with [sections], paths, trainer errors): never parse it as markup.
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Background work that fails (a disk error, a run directory removed under us) becomes a message."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.group or event.worker.name} stopped: {type(error).__name__}: {error}. "
                        "The console keeps working; reopen the screen to retry.", severity="error", timeout=10)

    # -------------------------------------------------------------------------------------- navigation
    def _show(self, screen: Screen) -> None:
        """Replace whatever screen is open (and any dialog on it) with ``screen``; Esc then returns to runs."""
        def replace() -> None:
            while len(self.screen_stack) > 1:
                self.pop_screen()
            self.push_screen(screen)

        self._unless_unsaved(replace)

    def _unless_unsaved(self, then, *, parked_too: bool = False) -> None:
        """Run ``then``, after asking first if an editor holds unsaved changes (never lose what was typed)."""
        parked = [self.parked_editor] if parked_too and self.parked_editor else []
        editors = list(self.screen_stack) + parked
        editor = next((s for s in editors if getattr(s, "doc", None) is not None and s.doc.dirty), None)
        if editor is None:
            then()
            return
        editor.flush_text()
        name = str(editor.doc.path) if editor.doc.path else "The config you are editing"
        body = Text.assemble((name, "bold"), " has unsaved changes. Leave it and lose them?\n\n",
                             "Cancel, then Ctrl-S saves (F2: save as).")

        def decided(discard: bool | None) -> None:
            if discard:
                editor.doc.saved_text = editor.doc.text  # asked and answered: do not ask again on the way out
                then()

        self.push_screen(ConfirmDialog("Unsaved changes", body, confirm="Discard changes", danger=True), decided)

    async def action_quit(self) -> None:
        self._unless_unsaved(self.exit, parked_too=True)

    def action_back_to_editor(self) -> None:
        """Return to the editor a launch left with unsaved edits."""
        if self.parked_editor is None or self.screen is self.parked_editor:
            self.notify("No config with unsaved edits is waiting; o opens one.", timeout=4)
            return
        self._show(self._unpark())

    def _park(self, editor: Screen) -> None:
        self._unpark(discard=True)
        self.install_screen(editor, name=PARKED_EDITOR)  # installed screens survive being popped
        self.parked_editor = editor

    def _unpark(self, *, discard: bool = False) -> Screen | None:
        editor, self.parked_editor = self.parked_editor, None
        if editor is not None:
            self.uninstall_screen(PARKED_EDITOR)
            if discard:
                editor.remove()
        return editor

    def action_show_runs(self) -> None:
        if not self._on_runs_screen():
            self._show(self.runs_screen())

    def presets(self) -> list[Path]:
        seen, found = set(), []
        for folder in (Path("configs"), REPO_CONFIGS):
            for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
                if path.resolve() not in seen:
                    seen.add(path.resolve())
                    found.append(path)
        return found

    def open_config(self, path: str | os.PathLike) -> bool:
        from tui_trainer.app.screens.editor import EditorScreen
        try:
            doc = ConfigDocument.load(path)
        except ConfigError as e:
            self.notify(str(e), title="Cannot open config", severity="error", timeout=10)
            return False
        self._show_editor(EditorScreen(doc))
        return True

    def _show_editor(self, editor: Screen) -> None:
        """Open an editor; one parked with unsaved edits is asked about first (it would be replaced)."""
        def replace() -> None:
            self._unpark(discard=True)
            self._show(editor)

        self._unless_unsaved(replace, parked_too=True)

    def open_default_config(self) -> None:
        from tui_trainer.app.screens.editor import EditorScreen
        presets = self.presets()
        for name in DEFAULT_PRESETS:
            for path in presets:
                if path.name == name:
                    self.open_config(path)
                    return
        # No presets beside us (an installed package run elsewhere): start from the built-in defaults.
        text = config_to_toml(TrainingConfig(), header="GPT-2 124M defaults (gpt-console)")
        self._show_editor(EditorScreen(ConfigDocument(text)))
        self.notify(f"No {DEFAULT_PRESETS[0]} found under configs/; starting from the built-in defaults.")

    def open_run_config(self, run_id: str) -> None:
        """A run's config as a new, unsaved document (diffed against that run's config)."""
        from tui_trainer.app.screens.editor import EditorScreen
        try:
            run = self.store.get(run_id)
            text = run.config_text()
        except Exception as e:
            self.notify(f"Cannot read the config of {run_id}: {e}", severity="error", timeout=8)
            return
        self._show_editor(EditorScreen(ConfigDocument(text, origin_path=run.config_file)))

    def action_open_config(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.open_config(path)

        self.push_screen(OpenConfigDialog(self.presets()), chosen)

    def open_run(self, run_id: str) -> None:
        from tui_trainer.app.screens.dashboard import DashboardScreen
        try:
            run = self.store.get(run_id)
        except Exception as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        self._show(DashboardScreen(run))

    def open_launched_run(self, run_id: str, editor: Screen) -> None:
        """The dashboard of a run just launched from ``editor``. The run holds its own copy of the config, so
        nothing is asked: an editor with unsaved edits is parked (F4 returns to it), never discarded."""
        from tui_trainer.app.screens.dashboard import DashboardScreen
        try:
            run = self.store.get(run_id)
        except Exception as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        dirty = getattr(editor, "doc", None) is not None and editor.doc.dirty
        if dirty:
            self._park(editor)
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.push_screen(DashboardScreen(run))
        if dirty:
            name = editor.doc.path.name if editor.doc.path else "The config"
            self.notify(f"Launched {run_id} with your edits. {name} still has unsaved changes: F4 returns "
                        "to it, Ctrl-S there saves them.", timeout=8)

    def open_compare(self, run_ids: list[str]) -> None:
        from tui_trainer.app.screens.compare import CompareScreen
        try:
            runs = [self.store.get(rid) for rid in run_ids]
        except Exception as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        self._show(CompareScreen(runs))

    # ----------------------------------------------------------------------------------- run actions
    def confirm_stop(self, run_id: str) -> None:
        body = Text.assemble("Stop ", (run_id, "bold"), "?\n\nThe trainer finishes its current step, writes a "
                             "checkpoint and exits; you can resume it later (r).")

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._stop(run_id)

        self.push_screen(ConfirmDialog("Stop run?", body, confirm="Stop", danger=True), confirmed)

    @work(thread=True, exit_on_error=False, group="run-actions")
    def _stop(self, run_id: str) -> None:
        self.call_from_thread(self.notify, f"Stopping {run_id}… (checkpoint, then exit)", timeout=4)
        try:
            status = self.store.get(run_id).stop()
        except Exception as e:
            self.call_from_thread(self.notify, f"Could not stop {run_id}: {e}", severity="error", timeout=10)
            return
        said = status.reason if status.reason.startswith(status.label) else \
            f"{status.label}" + (f" — {status.reason}" if status.reason else "")
        self.call_from_thread(self.notify, f"{run_id}: {said}")  # "…: stopped by the user (ada)"

    @work(thread=True, exit_on_error=False, group="run-actions")
    def resume_run(self, run_id: str) -> None:
        try:
            run = self.store.get(run_id)
            run.resume()
        except Exception as e:  # RunIsRunning, no checkpoint, LaunchError: each says what to do
            self.call_from_thread(self.notify, str(e), title="Cannot resume", severity="error", timeout=10)
            return
        self.call_from_thread(self.notify, f"Resumed {run_id} from its newest checkpoint.")

    # ------------------------------------------------------------------------------------ help/palette
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        names = {"RunsScreen": "Runs", "EditorScreen": "Config editor", "DashboardScreen": "Run dashboard",
                 "CompareScreen": "Compare"}
        sections = []
        current = type(self.screen).__name__
        from tui_trainer.app.screens.compare import CompareScreen
        from tui_trainer.app.screens.dashboard import DashboardScreen
        from tui_trainer.app.screens.editor import EditorScreen
        from tui_trainer.app.screens.runs import RunsScreen
        for cls in (RunsScreen, EditorScreen, DashboardScreen, CompareScreen):
            title = names[cls.__name__] + ("  (this screen)" if cls.__name__ == current else "")
            sections.append((title, list(cls.BINDINGS)))
        sections.append(("Everywhere", list(self.BINDINGS) + [
            Binding("ctrl+p", "command_palette", "Command palette"),
            Binding("escape", "back", "Back to runs / close a dialog")]))
        sections.sort(key=lambda s: "this screen" not in s[0])
        self.push_screen(HelpScreen(sections))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Runs", "Show every run", self.action_show_runs)
        yield SystemCommand("New run", "Open the default preset in the editor", self.open_default_config)
        yield SystemCommand("Open config…", "Open a preset or any TOML file", self.action_open_config)
        yield SystemCommand("Help", "Keys and screens", self.action_help)
        if self.parked_editor is not None:
            what = "The config a launch left with unsaved edits (F4)"
            yield SystemCommand("Back to the config editor", what, self.action_back_to_editor)
        for mode in NOTIFY_MODES:
            if mode != self.notify_mode:
                yield SystemCommand(f"When a run ends: {NOTIFY_WORDS[mode]}",
                                    "How a run that finishes, fails or is lost while you look elsewhere is told",
                                    partial(self.set_notify_mode, mode))
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            for title, help_text, callback in commands():
                yield SystemCommand(title, help_text, callback)
        yield from super().get_system_commands(screen)


def run_app(config_path: str | None = None, runs_root: str | None = None) -> None:
    GptConsole(config_path=config_path, runs_root=runs_root).run()
