"""The gpt-console Textual app: screens, navigation, the command palette, and actions shared by screens.

Never imports torch (the trainer runs in its own torchrun processes). Closing the app never stops a run: runs
live in their own sessions, and nothing here signals them on exit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tui_trainer.app.config_doc import ConfigDocument
from tui_trainer.app.runs_model import RunsModel
from tui_trainer.app.screens.dialogs import ConfirmDialog, OpenConfigDialog
from tui_trainer.app.screens.help import HelpScreen
from tui_trainer.app.screens.runs import RunsScreen
from tui_trainer.runs import RunStore
from tui_trainer.training.lib.config import ConfigError, TrainingConfig, config_to_toml

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_PRESETS = ("default.toml", "gpt2-124m.toml")  # the first one found is what "new run" opens


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
    ]

    def __init__(self, config_path: str | None = None, runs_root: str | None = None) -> None:
        super().__init__()
        self.config_path = config_path
        self.store = RunStore(runs_root)
        self.runs_model = RunsModel(self.store)

    def on_mount(self) -> None:
        # Installed, not pushed: with a config to open, the editor alone makes the first frame (fast start);
        # the runs screen is composed the first time it is shown and kept afterwards.
        self.install_screen(RunsScreen(), name="runs")
        if not (self.config_path and self.open_config(self.config_path)):
            self.push_screen("runs")

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

    def _unless_unsaved(self, then) -> None:
        """Run ``then``, after asking first if an editor holds unsaved changes (never lose what was typed)."""
        editor = next((s for s in self.screen_stack if getattr(s, "doc", None) is not None and s.doc.dirty), None)
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
        self._unless_unsaved(self.exit)

    def action_show_runs(self) -> None:
        if not isinstance(self.screen, RunsScreen):
            self._show(self.get_screen("runs"))

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
        self._show(EditorScreen(doc))
        return True

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
        self._show(EditorScreen(ConfigDocument(text)))
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
        self._show(EditorScreen(ConfigDocument(text, origin_path=run.config_file)))

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
        self.call_from_thread(self.notify, f"{run_id}: {status.label}" + (f" — {status.reason}" if status.reason
                                                                           else ""))

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
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            for title, help_text, callback in commands():
                yield SystemCommand(title, help_text, callback)
        yield from super().get_system_commands(screen)


def run_app(config_path: str | None = None, runs_root: str | None = None) -> None:
    GptConsole(config_path=config_path, runs_root=runs_root).run()
