"""Runs screen, dashboard, compare, help and command palette, driven by Pilot over run directories whose event
logs are written here (the real-trainer flow is in test_console_e2e.py)."""

from __future__ import annotations

import time

from console_events import EventLog
from console_pilot import SIZE, notes, run, text_of, wait_for
from textual.widgets import DataTable

from tui_trainer.app.chart_render import ChartOptions
from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.compare import CompareScreen
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.screens.dialogs import ConfirmDialog
from tui_trainer.app.screens.help import HelpScreen
from tui_trainer.app.screens.runs import RunsScreen
from tui_trainer.app.widgets.chart import MetricChart
from tui_trainer.app.widgets.run_panels import ErrorBanner
from tui_trainer.runs import RunStore


def finished_run(store: RunStore, name: str, *, steps: int = 40, failed: bool = False, t0: float | None = None):
    r = store.create(name)
    log = EventLog(t0=t0 if t0 is not None else time.time() - 3600)
    log.start(max_steps=steps)
    for n in range(steps):
        log.step(n, 5.0 - n / steps)
        if n % 10 == 0:
            log.add("val", after=0.0, step=n, loss=5.1 - n / steps)
            log.add("sample", after=0.0, step=n, prompt="Hello", texts=[f" step {n} text"], source="schedule")
        if n % 20 == 0:
            log.add("hellaswag", after=0.0, step=n, correct=2, correct_norm=2 + n // 20, total=8, acc=0.25,
                    acc_norm=(2 + n // 20) / 8)
    if failed:
        log.add("error", message="RuntimeError: CUDA out of memory\nmore", traceback="Traceback (most recent...)")
        log.add("run_end", status="failed", reason="RuntimeError: CUDA out of memory", step=steps - 1)
    else:
        log.add("run_end", status="finished", reason="reached max_steps", step=steps - 1)
    log.write(r.events_file)
    r.log_file.write_text("step 0 | loss 5.0\nstep 1 | loss 4.9\n")
    r.config_file.write_text("[model]\nn_layer = 2\n")
    return r


def offered(screen) -> set[str]:
    """Keys the footer offers on ``screen`` (bindings shown and allowed by its check_action)."""
    return {ab.binding.key for ab in screen.active_bindings.values() if ab.binding.show and ab.enabled}


async def runs_screen(pilot) -> RunsScreen:
    app = pilot.app
    screen = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen, what="runs")
    await wait_for(pilot, lambda: screen.rows, what="the table rows")
    return screen


def test_dashboard_replays_a_run_and_its_keys_work(tmp_path):
    store = RunStore(tmp_path / "runs")
    r = finished_run(store, "failed", failed=True)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await runs_screen(pilot)
            app.open_run(r.id)
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                                  what="dashboard")
            view = dash.view
            await wait_for(pilot, lambda: view.end_status == "failed", what="the replay")
            assert len(view.series["train_loss"]) == 40 and len(view.hellaswag_points) == 2
            banner = dash.query_one(ErrorBanner)
            await wait_for(pilot, lambda: banner.display, what="the error banner")
            assert "CUDA out of memory" in text_of(banner) and "no checkpoint" in text_of(banner)
            header = text_of(dash.query_one("#run-header"))
            assert r.id in header and "FAILED" in header and "step 40/40" in header
            assert "HellaSwag 0.3750" in dash.query_one("#chart-hellaswag", MetricChart).spec.title

            # Chart options apply to every chart.
            await pilot.press("m", "l", "x")
            for chart in dash.query(MetricChart):
                assert chart.options == ChartOptions(ema=False, log_y=True, x_axis="tokens")
            await pilot.pause(0.2)

            # Samples: newest first, scrub back in time, follow again.
            body = dash.query_one("#samples-body")
            assert "step 30" in text_of(body) and "following the newest" in text_of(body)
            await pilot.press("left_square_bracket", "left_square_bracket")
            assert "step 10" in text_of(body) and "round 2/4" in text_of(body)
            await pilot.press("left_curly_bracket")
            assert "step 0 " in text_of(body)
            await pilot.press("right_curly_bracket")
            assert "step 30" in text_of(body)

            # Trainer output and events panes got their lines.
            await wait_for(pilot, lambda: dash.query_one("#output").shown_total == 2, what="trainer output")
            assert dash.query_one("#events").shown_total == view.logs_total > 0

            # A failed run without a checkpoint: no control keys, no r (nothing to resume); n edits its config
            # as a new run instead, and the banner says so.
            await wait_for(pilot, lambda: dash.feed.status is not None, what="the process status")
            await pilot.pause(0.3)
            keys = offered(dash)
            assert {"s", "k", "p", "e", "r"}.isdisjoint(keys) and {"escape", "n"} <= keys, keys
            assert "press n to edit its config as a new run" in text_of(banner)
            assert "press r" not in text_of(banner)
            await pilot.press("k", "r")
            await pilot.pause(0.2)
            assert not notes(app) or not any("resum" in n.lower() for n in notes(app))
            await pilot.press("n")
            editor = await wait_for(pilot, lambda: type(app.screen).__name__ == "EditorScreen" and app.screen,
                                    what="the run's config in the editor")
            assert "n_layer = 2" in editor.doc.text

    run(scenario)


def test_runs_table_delete_with_confirmation_and_never_a_running_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    done = finished_run(store, "done", t0=time.time() - 7200)
    live = store.create("live")
    log = EventLog(t0=time.time() - 5)                 # fresh events, no run_end: alive (not launched by us)
    log.start(max_steps=1000)
    log.step(0, 5.0)
    log.add("heartbeat", after=0.0, step=0)
    log.write(live.events_file)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = await runs_screen(pilot)
            await wait_for(pilot, lambda: len(screen.rows) == 2, what="both runs")
            assert screen.rows[live.id].state == "running" and screen.rows[done.id].state == "finished"
            table = screen.query_one(DataTable)
            table.focus()
            table.move_cursor(row=list(screen.rows).index(live.id))
            await pilot.press("d")
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ConfirmDialog)
            assert any("running" in n and "stop it first" in n for n in notes(app))
            assert live.dir.exists()

            table.move_cursor(row=list(screen.rows).index(done.id))
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
            await pilot.press("escape")                  # cancelled: nothing deleted
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back")
            assert done.dir.exists()
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
            await pilot.press("y")                       # Enter would press Cancel: never one Enter away
            await wait_for(pilot, lambda: not done.dir.exists(), what="the deletion")
            await wait_for(pilot, lambda: list(screen.rows) == [live.id], what="the table to drop the row")

    run(scenario)


def test_compare_overlays_marked_runs(tmp_path):
    store = RunStore(tmp_path / "runs")
    a = finished_run(store, "a", steps=30, t0=time.time() - 7200)
    b = finished_run(store, "b", steps=50)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            screen = await runs_screen(pilot)
            await wait_for(pilot, lambda: len(screen.rows) == 2, what="both runs")
            table = screen.query_one(DataTable)
            table.focus()
            await pilot.press("c")                        # nothing marked: explained
            assert any("Mark two or more" in n for n in notes(app))
            await pilot.press("space", "down", "space", "c")
            cmp = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen,
                                 what="compare")
            await wait_for(pilot, lambda: all(v.end_status for v in cmp.views), what="both replays")
            chart = cmp.query_one("#cmp-train", MetricChart)
            assert [line.label for line in chart.spec.lines] == sorted([a.id, b.id])
            assert sorted(len(line.series) for line in chart.spec.lines) == [30, 50]
            await pilot.press("x")
            assert chart.options.x_axis == "tokens"

    run(scenario)


def test_help_screen_and_command_palette(tmp_path):
    async def scenario():
        app = GptConsole(runs_root=str(tmp_path / "runs"))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs")
            await pilot.press("question_mark")
            help_screen = await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen,
                                         what="help")
            assert help_screen.sections[0][0].startswith("Runs  (this screen)")
            titles = [title for title, _ in help_screen.sections]
            assert any(t.startswith("Run dashboard") for t in titles) and "Everywhere" in titles
            await pilot.press("escape")
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert {"New run", "Open config…", "Compare marked runs", "Delete run", "Theme"} <= set(titles)
            await pilot.press("ctrl+p")
            await pilot.press(*"new run")
            await pilot.pause(0.3)
            await pilot.press("enter")
            editor = await wait_for(pilot, lambda: type(app.screen).__name__ == "EditorScreen" and app.screen,
                                    what="the editor")
            assert editor.doc.path.name == "default.toml" and editor.validation.ok   # the default preset

    run(scenario)
