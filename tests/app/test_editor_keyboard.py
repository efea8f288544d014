"""The config editor from the keyboard, driven by Pilot: keys typed ahead of the screen are applied in order
(never lost), the open dialog starts on its path box, F6 focuses the TOML view at its error, the jump-to-key
search, and F5 with unsaved changes opens the new run's dashboard without a discard prompt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from console_pilot import notes, open_editor, run, text_of, type_into, wait_for
from test_console_e2e import store, tiny_config  # noqa: F401 - the fixture ends every process a launch starts
from textual import events
from textual.widgets import Input, TextArea

from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.screens.dialogs import ConfirmDialog
from tui_trainer.app.widgets.config_form import ConfigForm

REPO = Path(__file__).resolve().parents[2]
PRESET = REPO / "configs" / "shakespeare.toml"


def preset_copy(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    shutil.copy(PRESET, path)
    return path


def type_ahead(app, keys: list[str]) -> None:
    """Queue keys the way a terminal delivers them to a busy app: all at once, none waiting for the last one's
    effect (Pilot's press waits for the app to go idle after every key, which hides ordering bugs)."""
    for key in keys:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        app._driver.send_message(event)


def test_keys_typed_right_after_tabs_land_in_the_field_tab_reached(tmp_path):
    path = preset_copy(tmp_path)

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_editor(pilot)
            form = screen.query_one(ConfigForm)
            # Tabs → form → n_layer → n_head → n_embd, then "12" at once, then two more tabs and "5".
            type_ahead(app, ["tab", "tab", "tab", "tab", "1", "2", "tab", "tab", "5"])
            await wait_for(pilot, lambda: screen.doc.value("model.vocab_size")[0] == 5, what="the last key")
            await pilot.pause(0.2)
            assert form.row("model.n_embd").query_one(Input).value == "12"
            assert screen.doc.value("model.n_embd") == (12, True)
            assert form.row("model.vocab_size").query_one(Input).value == "5"
            for key, value in (("model.n_layer", 6), ("model.n_head", 6), ("model.block_size", 256)):
                assert form.row(key).query_one(Input).value == str(value), key
                assert screen.doc.value(key) == (value, True), key
            assert "expected an integer" not in text_of(screen.query_one("#problems"))

    run(scenario)


def test_open_dialog_starts_on_the_path_box_and_enter_opens_what_was_typed(tmp_path):
    path = preset_copy(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("[model]\nn_layer = 3\n")

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24)) as pilot:
            await open_editor(pilot)
            await pilot.press("ctrl+o")
            dialog = await wait_for(pilot, lambda: type(app.screen).__name__ == "OpenConfigDialog"
                                    and app.screen, what="the open dialog")
            assert dialog.presets, "the repo's presets are listed"
            assert app.focused is dialog.query_one("#path-input", Input)
            await pilot.press("down")                    # the presets are one key away
            await wait_for(pilot, lambda: app.focused is dialog.query_one("#presets"), what="the preset list")
            await pilot.press("shift+tab")
            await wait_for(pilot, lambda: app.focused is dialog.query_one("#path-input"), what="the path box")
            await pilot.press(*str(other), "enter")
            await wait_for(pilot, lambda: getattr(getattr(app.screen, "doc", None), "path", None) == other,
                           what="the typed path to open")

    run(scenario)


def test_a_destructive_confirmation_starts_on_cancel(tmp_path):
    answers = []

    async def scenario():
        app = GptConsole(runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            for danger in (True, False):
                dialog = ConfirmDialog("Sure?", "body", confirm="Do it", danger=danger)
                app.push_screen(dialog, answers.append)
                dialog = await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen,
                                        what="the dialog")
                wanted = "cancel" if danger else "confirm"
                await wait_for(pilot, lambda: getattr(app.focused, "id", None) == wanted
                               and app.focused.screen is dialog, what=f"{wanted} to have the focus")
                await pilot.press("enter")
                await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="dismissed")
            app.push_screen(ConfirmDialog("Sure?", "body", confirm="Do it", danger=True), answers.append)
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the dialog")
            await pilot.press("y")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="dismissed")
        assert answers == [False, True, True]

    run(scenario)


@pytest.mark.slow
def test_launch_with_unsaved_edits_opens_the_dashboard_and_keeps_the_edits(tmp_path, shared_data, store):
    config = tiny_config(tmp_path, shared_data)
    on_disk = config.read_text()

    async def scenario():
        app = GptConsole(config_path=str(config), runs_root=str(store.root))
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            editor = await open_editor(pilot)
            await type_into(pilot, editor, "schedule.max_steps", "12")
            assert editor.doc.dirty
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
            await pilot.press("enter")                   # Launch is not destructive: it has the focus
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                                  timeout=60, what="the new run's dashboard")
            assert not any(isinstance(s, ConfirmDialog) for s in app.screen_stack), "asked to discard edits"
            assert "max_steps = 12" in dash.run.config_text()          # the run captured the edited text
            assert any("F4" in n and "unsaved" in n for n in notes(app))
            await pilot.press("ctrl+q")                  # quitting still asks about the parked edits
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the unsaved question")
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is dash, what="back on the dashboard")
            await pilot.press("f4")                      # back to the edits, still unsaved
            await wait_for(pilot, lambda: app.screen is editor, what="the parked editor")
            assert editor.doc.dirty and editor.doc.value("schedule.max_steps") == (12, True)
        assert config.read_text() == on_disk

    run(scenario)


def test_find_key_jumps_to_a_field_far_down_the_form(tmp_path):
    path = preset_copy(tmp_path)

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_editor(pilot)
            await pilot.press("ctrl+f")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "KeySearchDialog", what="key search")
            await pilot.press(*"max_st", "enter")
            form = screen.query_one(ConfigForm)
            box = form.row("schedule.max_steps").query_one(Input)
            await wait_for(pilot, lambda: app.focused is box, what="schedule.max_steps to have the focus")
            await pilot.pause(0.2)
            assert box.region.height and form.region.contains_region(box.region), "the field is on screen"
            await pilot.press(*"321")                    # the input had its text selected: typing replaces it
            await wait_for(pilot, lambda: screen.doc.value("schedule.max_steps") == (321, True), what="edit")

            # Words of the help text find keys too; the best name match comes first.
            await pilot.press("ctrl+f")
            dialog = await wait_for(pilot, lambda: type(app.screen).__name__ == "KeySearchDialog"
                                    and app.screen, what="the key search")
            await pilot.press(*"warmup")
            await pilot.pause(0.1)
            first = dialog.query_one("#key-matches").get_option_at_index(0).id
            assert first == "schedule.warmup_steps"
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, what="back in the editor")

    run(scenario)


def test_bad_toml_hides_the_form_and_f6_focuses_the_error_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("# keep me\n[model]\nn_layer = 4\n[optim\nmax_lr = 3e-4\n")

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_editor(pilot)
            form = screen.query_one(ConfigForm)
            banner = screen.query_one("#form-syntax")
            # No schema defaults dressed up as the file's values: no form, and the banner says where.
            assert not form.display and banner.display
            assert "line 4, column 6" in text_of(banner) and "F6" in text_of(banner)
            await pilot.press("f6")
            area = await wait_for(pilot, lambda: isinstance(app.focused, TextArea) and app.focused,
                                  what="the TOML view to take the focus")
            await wait_for(pilot, lambda: area.selected_text.strip() == "[optim", what="the marked line")
            assert "line 4, column 6" in text_of(screen.query_one("#toml-error"))
            # Fixed in the TOML view: the form comes back with the file's values.
            area.load_text("# keep me\n[model]\nn_layer = 4\n[optim]\nmax_lr = 3e-4\n")
            await wait_for(pilot, lambda: form.display and not banner.display, what="the form to come back")
            assert form.row("model.n_layer").query_one(Input).value == "4"

    run(scenario)


def test_80_columns_fold_the_side_panel_into_a_status_line(tmp_path):
    path = preset_copy(tmp_path)

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_editor(pilot)
            side, status, tabs = (screen.query_one(f"#editor-{name}") for name in ("side", "status", "tabs"))
            assert not side.display and status.display and tabs.display
            assert "valid" in text_of(status) and "F7" in text_of(status)
            row = screen.query_one(ConfigForm).row("model.n_layer")
            box = row.query_one(Input)
            assert box.region.width >= 20, "the value has room beside the key name"
            assert box.region.x > row.query_one(".field-name").region.x
            await pilot.press("f7")
            await wait_for(pilot, lambda: side.display and not tabs.display, what="the checks, not the form")
            assert side.region.width >= 70
            await pilot.press("f7")
            await wait_for(pilot, lambda: tabs.display and not side.display, what="the form back")
            await pilot.resize_terminal(160, 48)
            await wait_for(pilot, lambda: side.display and not status.display, what="the side panel at 160")
            await pilot.resize_terminal(220, 60)
            await wait_for(pilot, lambda: side.region.width > 52, what="a wider side panel at 220")

    run(scenario)


def test_help_from_the_editor_says_how_to_move_around_the_form(tmp_path):
    path = preset_copy(tmp_path)

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24)) as pilot:
            await open_editor(pilot)
            await pilot.press("f1")
            help_screen = await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen" and app.screen,
                                         what="help")
            await pilot.pause(0.2)
            shown = " ".join(text_of(s, width=100) for s in help_screen.query("Static"))
            assert "Config editor  (this screen)" in shown
            for words in ("Tab / Shift-Tab go field to field", "Ctrl-F finds a key", "ctrl+f", "Find",
                          "f7", "f4"):
                assert words in shown, words

    run(scenario)
