"""The runs screen: filtering, names and notes, resume offered only where it works, and the notification
when a run ends while the user looks at another screen."""

from __future__ import annotations

import json
import time

import pytest
from console_events import EventLog
from console_pilot import notes, run, text_of, wait_for
from textual.widgets import DataTable, Input

from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.screens.run_label import RunLabelDialog
from tui_trainer.app.screens.runs import RunsScreen
from tui_trainer.runs import RunStore
from tui_trainer.runs.labels import LABEL_FILE, label_problems, read_label, write_label


def ended_run(store: RunStore, name: str, status: str, *, checkpoint_step: int | None = None, t0=None):
    r = store.create(name)
    log = EventLog(t0=t0 if t0 is not None else time.time() - 3600)
    log.start(max_steps=100)
    for n in range(12):
        log.step(n, 5.0 - n / 20)
    reason = "stopped by the user" if status == "stopped" else "boom"
    log.add("run_end", status=status, reason=reason, step=12)
    log.write(r.events_file)
    r.config_file.write_text("[model]\nn_layer = 2\n")
    if checkpoint_step is not None:
        (r.checkpoint_dir / f"step-{checkpoint_step:08d}").mkdir(parents=True)
    return r


def live_run(store: RunStore, name: str):
    r = store.create(name)
    log = EventLog(t0=time.time() - 3)
    log.start(max_steps=100)
    log.step(0, 5.0)
    log.write(r.events_file)
    return r, log


async def runs_screen(pilot, count: int) -> RunsScreen:
    app = pilot.app
    screen = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen, what="runs")
    await wait_for(pilot, lambda: len(screen.all_rows) == count, what=f"{count} runs")
    screen.query_one(DataTable).focus()
    return screen


def offered(screen) -> set[str]:
    return {ab.binding.key for ab in screen.active_bindings.values() if ab.binding.show and ab.enabled}


def test_filter_name_note_and_resume_offered_only_where_it_works(tmp_path):
    store = RunStore(tmp_path / "runs")
    resumable = ended_run(store, "resumable", "stopped", checkpoint_step=10, t0=time.time() - 7200)
    no_ckpt = ended_run(store, "setup-fail", "failed", t0=time.time() - 3600)
    finished = ended_run(store, "complete", "finished", checkpoint_step=100)

    async def scenario():
        app = GptConsole(runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            screen = await runs_screen(pilot, 3)
            title = text_of(screen.query_one("#runs-title"))
            assert "Runs runs" not in title and "3 runs" in title
            table = screen.query_one(DataTable)
            labels = [str(c.label) for c in table.columns.values()][1:]
            assert labels == ["run", "status", "step", "loss", "age"]

            def select(run_id: str) -> None:
                table.move_cursor(row=list(screen.rows).index(run_id))

            select(resumable.id)
            await pilot.pause(0.1)
            assert "r" in offered(screen) and "s" not in offered(screen)
            assert "r resumes it from the checkpoint at step 10" in text_of(screen.query_one("#run-detail"))
            for other in (no_ckpt.id, finished.id):
                select(other)
                await pilot.pause(0.1)
                assert "r" not in offered(screen), other
            assert "e edits its config as a new run" not in text_of(screen.query_one("#run-detail"))
            select(no_ckpt.id)
            await pilot.pause(0.1)
            assert "e edits its config as a new run" in text_of(screen.query_one("#run-detail"))

            # Name and note: a, type, Enter, Enter.
            await pilot.press("a")
            dialog = await wait_for(pilot, lambda: isinstance(app.screen, RunLabelDialog) and app.screen,
                                    what="the name/note dialog")
            assert app.focused is dialog.query_one("#label-name", Input)
            await pilot.press(*"first try", "enter", *"tokenizer was offline", "enter")
            await wait_for(pilot, lambda: screen.rows[no_ckpt.id].name == "first try", what="the name")
            assert read_label(no_ckpt.dir).note == "tokenizer was offline"
            assert "first try" in [str(c) for c in table.get_row(no_ckpt.id)][1]
            assert "tokenizer was offline" in text_of(screen.query_one("#run-detail"))

            # Filter: / and words; the note counts; Esc clears.
            await pilot.press("slash", *"offline")
            await pilot.pause(0.1)
            assert list(screen.rows) == [no_ckpt.id]
            assert "1 shown" in text_of(screen.query_one("#runs-title"))
            await pilot.press("enter")                    # back to the table, filter kept
            assert app.focused is table and list(screen.rows) == [no_ckpt.id]
            await pilot.press("slash", "ctrl+u", *"zzz")
            await pilot.pause(0.1)
            assert not screen.rows and "No run matches" in text_of(screen.query_one("#run-detail"))
            await pilot.press("escape")
            await pilot.pause(0.1)
            assert len(screen.rows) == 3 and app.focused is table

    run(scenario)


def test_labels_are_validated_both_ways(tmp_path):
    assert label_problems("a" * 41, "")
    assert label_problems("ok", "line one\nline two")
    assert label_problems("tab\there", "")
    assert label_problems("bidi\u202eoverride", "")
    assert not label_problems("β run ✓", "a note")
    with pytest.raises(ValueError, match="40"):
        write_label(tmp_path, "x" * 50, "")
    write_label(tmp_path, "  spaced  ", " note ")
    assert read_label(tmp_path).name == "spaced" and read_label(tmp_path).note == "note"
    for hostile in ("[1, 2]", '{"name": 5}', '{"name": "a\\u0000b"}', "{", '{"name": "' + "x" * 20000 + '"}'):
        (tmp_path / LABEL_FILE).write_text(hostile)
        assert read_label(tmp_path).name == ""
    (tmp_path / LABEL_FILE).unlink()
    (tmp_path / LABEL_FILE).symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"name": "followed", "note": ""}')
    assert read_label(tmp_path).name == ""                    # never read through a symlink


def test_a_run_that_ends_while_the_user_is_elsewhere_is_announced(tmp_path, monkeypatch):
    monkeypatch.delenv("GPT_CONSOLE_NOTIFY", raising=False)
    store = RunStore(tmp_path / "runs")
    other = ended_run(store, "other", "finished")
    live, log = live_run(store, "live")

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        bells = []
        app.bell = lambda: bells.append(1)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await runs_screen(pilot, 2)
            await wait_for(pilot, lambda: app.run_watcher._states and
                           app.run_watcher._states.get(live.id) == "running", what="the watcher's first look")
            app.open_run(other.id)                        # looking at another run's dashboard
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
            with open(live.events_file, "a", encoding="utf-8") as f:
                f.write(json.dumps({"v": 1, "seq": 99, "t": time.time(), "type": "run_end",
                                    "status": "failed",
                                    "reason": "RuntimeError: out of memory", "step": 1}) + "\n")
            await wait_for(pilot, lambda: any("live" in n and "failed" in n and "out of memory" in n
                                              for n in notes(app)), timeout=15, what="the toast")
            assert bells == [1]
            app.set_notify_mode("off")
            assert app.notify_mode == "off"

    run(scenario)
