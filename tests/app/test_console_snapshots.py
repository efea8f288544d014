"""What the runs screen and the dashboard look like at 80×24 and 160×48, on fixed synthetic runs.

Everything shown is fixed: run ids and event times (synthetic_run.py), the clock the runs table measures ages
against, the time zone, and the working directory (the runs root shows as ``runs/``). After a deliberate
change of layout or drawing, regenerate with ``--snapshot-update`` and look at the SVGs in __snapshots__/ first.
"""

from __future__ import annotations

import time

import pytest
from console_pilot import wait_for
from synthetic_run import FAILED_ID, RUN_ID, failed_run, frozen_now, synthetic_run

from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.screens.runs import RunsScreen
from tui_trainer.runs import RunStore

SMALL, LARGE = (80, 24), (160, 48)


@pytest.fixture
def fixed_world(tmp_path, monkeypatch):
    """Two synthetic runs under ./runs, local time = UTC, notifications off (no toast races a snapshot)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("GPT_CONSOLE_NOTIFY", "off")
    time.tzset()
    store = RunStore(tmp_path / "runs")
    synthetic_run(store)
    failed_run(store)
    yield store
    monkeypatch.undo()
    time.tzset()


def console(store: RunStore) -> GptConsole:
    app = GptConsole(runs_root="runs")
    app.runs_model.clock = frozen_now
    return app


async def runs_ready(pilot) -> None:
    app = pilot.app
    screen = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen, what="runs")
    await wait_for(pilot, lambda: len(screen.rows) == 2, what="both runs")
    await pilot.pause(0.3)


def dashboard_of(run_id: str, *keys: str):
    async def ready(pilot) -> None:
        await runs_ready(pilot)
        pilot.app.open_run(run_id)
        app = pilot.app
        dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                              what="the dashboard")
        await wait_for(pilot, lambda: dash.view.end_status and dash.feed.status is not None,
                       what="the replay")
        await pilot.pause(0.6)          # past the redraw throttle: every panel shows the whole run
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.3)
    return ready


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_runs_screen(snap_compare, fixed_world, size):
    assert snap_compare(console(fixed_world), terminal_size=size, run_before=runs_ready)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_dashboard(snap_compare, fixed_world, size):
    assert snap_compare(console(fixed_world), terminal_size=size, run_before=dashboard_of(RUN_ID))


def test_dashboard_compact_samples(snap_compare, fixed_world):
    """80×24, one key: the samples instead of the chart."""
    assert snap_compare(console(fixed_world), terminal_size=SMALL, run_before=dashboard_of(RUN_ID, "a"))


def test_dashboard_of_a_run_that_failed_setting_up(snap_compare, fixed_world):
    """The reason once and whole, what to do (no r: nothing to resume), HellaSwag's skip explained (key 3)."""
    assert snap_compare(console(fixed_world), terminal_size=SMALL, run_before=dashboard_of(FAILED_ID, "3"))
