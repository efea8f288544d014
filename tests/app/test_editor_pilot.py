"""The config editor driven by Pilot: form ↔ TOML sync, validation and derived figures as you type, saving with
comments kept, bad files shown as messages."""

from __future__ import annotations

import shutil
from pathlib import Path

from console_pilot import SIZE, notes, open_editor, run, text_of, type_into, wait_for
from textual.widgets import Input, Select, Switch, TabbedContent, TextArea

from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.editor import EditorScreen
from tui_trainer.app.screens.runs import RunsScreen
from tui_trainer.app.widgets.config_form import ConfigForm
from tui_trainer.training.lib.config import load_config

REPO = Path(__file__).resolve().parents[2]
PRESET = REPO / "configs" / "shakespeare.toml"


def preset_copy(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    shutil.copy(PRESET, path)
    return path


def test_form_edit_validates_updates_derived_and_saves_with_comments(tmp_path):
    path = preset_copy(tmp_path)
    original = path.read_text()

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = await open_editor(pilot)
            assert "valid" in text_of(screen.query_one("#problems"))
            assert "16 × 256 = 4,096 tokens / rank" in text_of(screen.query_one("#derived"))

            # 3 sequences per micro-batch no longer divide the 16,384-token step: the trainer's rule fires.
            await type_into(pilot, screen, "optim.micro_batch_size", "3")
            problems = text_of(screen.query_one("#problems"))
            assert "1 problem" in problems and "optim.total_batch_size" in problems and "multiple" in problems
            assert screen.query_one(ConfigForm).row("optim.total_batch_size").has_class("-invalid")
            derived = text_of(screen.query_one("#derived"))
            assert "3 × 256 = 768 tokens / rank" in derived

            # Back to a value that divides it: valid again, derived panel shows the new accumulation.
            await type_into(pilot, screen, "optim.micro_batch_size", "8")
            assert "valid" in text_of(screen.query_one("#problems"))
            derived = text_of(screen.query_one("#derived"))
            assert "8 × 256 = 2,048 tokens / rank" in derived
            assert any(line.split()[:4] == ["grad", "accum", "/", "rank"] and line.split()[-1] == "8"
                       for line in derived.splitlines())

            # Not a number: the validator's own wording, under the field, and nothing written to the file.
            await type_into(pilot, screen, "model.n_layer", "six")
            row = screen.query_one(ConfigForm).row("model.n_layer")
            assert row.has_class("-invalid") and "expected an integer" in text_of(row.query_one(".field-help"))
            await type_into(pilot, screen, "model.n_layer", "4")
            assert not row.has_class("-invalid")

            # Choices are a Select, booleans a Switch.
            form = screen.query_one(ConfigForm)
            form.row("schedule.kind").query_one(Select).value = "linear"
            form.row("data.shuffle").query_one(Switch).value = False
            await pilot.pause(0.2)

            # The TOML view followed every edit and kept the preset's comments.
            text = screen.query_one("#toml-text", TextArea).text
            assert "micro_batch_size = 8   # sequences per forward" in text
            assert 'kind = "linear"         # cosine decay after warmup' in text
            assert "shuffle = false" in text and "n_layer = 4             # transformer blocks" in text
            assert "Tiny Shakespeare" in text  # the header comment block

            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: path.read_text() != original, what="the file to be saved")
            saved = path.read_text()
            assert saved == text
            cfg = load_config(path)
            assert (cfg.optim.micro_batch_size, cfg.model.n_layer, cfg.schedule.kind, cfg.data.shuffle) == \
                (8, 4, "linear", False)
            assert any("Saved" in n for n in notes(app))

            # The diff is against the preset it came from.
            screen.query_one(TabbedContent).active = "tab-diff"
            await pilot.pause(0.1)
            diff = text_of(screen.query_one("#diff-view"))
            assert "+micro_batch_size = 8" in diff and "-micro_batch_size = 16" in diff

    run(scenario)


def test_toml_view_edits_reach_the_form_and_syntax_errors_are_problems(tmp_path):
    path = preset_copy(tmp_path)

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_editor(pilot)
            await pilot.press("f6")                       # Form → TOML
            assert screen.query_one(TabbedContent).active == "tab-toml"
            area = screen.query_one("#toml-text", TextArea)
            area.load_text(area.text.replace("n_embd = 384", "n_embd = 192"))
            form = screen.query_one(ConfigForm)
            await wait_for(pilot, lambda: form.row("model.n_embd").query_one(Input).value == "192",
                           what="the form to show the edited text")
            assert "parameters" in text_of(screen.query_one("#derived"))

            area.load_text(area.text.replace("[model]", "[model"))
            await wait_for(pilot, lambda: "syntax" in text_of(screen.query_one("#problems")),
                           what="a syntax problem")
            assert "last readable text" in text_of(screen.query_one("#derived"))
            await pilot.press("f5")                       # launching an invalid config is refused, with a reason
            await pilot.pause(0.1)
            assert isinstance(app.screen, EditorScreen)
            assert any("problem" in n for n in notes(app))
            assert not (tmp_path / "runs").exists()

    run(scenario)


def test_a_missing_config_is_a_message_and_the_runs_screen_opens(tmp_path):
    async def scenario():
        app = GptConsole(config_path=str(tmp_path / "nope.toml"), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
            assert any("nope.toml" in n for n in notes(app))
            # Still working: open the help screen and close it.
            await pilot.press("f1")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to runs")

    run(scenario)


def test_a_file_with_bad_toml_opens_so_it_can_be_fixed(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("# keep me\n[optim\nmax_lr = 3e-4\n")

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_editor(pilot)
            assert "TOML syntax error" in text_of(screen.query_one("#problems"))
            area = screen.query_one("#toml-text", TextArea)
            area.load_text("# keep me\n[optim]\nmax_lr = 3e-4\n")
            await wait_for(pilot, lambda: "valid" in text_of(screen.query_one("#problems")), what="valid")
            assert screen.query_one(ConfigForm).row("optim.max_lr").query_one(Input).value == "0.0003"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: path.read_text() == "# keep me\n[optim]\nmax_lr = 3e-4\n", what="save")

    run(scenario)


def test_leaving_or_quitting_with_unsaved_changes_asks_first(tmp_path):
    path = preset_copy(tmp_path)
    original = path.read_text()

    async def scenario():
        app = GptConsole(config_path=str(path), runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_editor(pilot)
            await type_into(pilot, screen, "model.n_layer", "3")
            screen.query_one(ConfigForm).focus()       # away from the input, so keys reach the bindings
            await pilot.press("escape")
            dialog = await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog" and app.screen,
                                    what="the unsaved-changes question")
            await pilot.press("escape")                # cancel: still editing, nothing lost
            await wait_for(pilot, lambda: app.screen is screen, what="back in the editor")
            assert screen.doc.value("model.n_layer") == (3, True) and dialog is not None
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="the quit question")
            await pilot.press("y")                     # discard and quit (Enter would press Cancel)
            await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
        assert path.read_text() == original

    run(scenario)
