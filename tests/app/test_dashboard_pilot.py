"""The dashboard driven by Pilot over hand-written event logs: the sample the user asked for, small-terminal
layouts, the two-line header, alerts, and what is offered for runs that cannot resume."""

from __future__ import annotations

import json
import time

from console_events import EventLog
from console_pilot import notes, run, text_of, wait_for
from rich.console import Console
from textual.widgets import Input

from tui_trainer.app.console import GptConsole
from tui_trainer.app.run_view import Alert, RunView
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.screens.dialogs import PromptDialog
from tui_trainer.app.widgets.chart import MetricChart
from tui_trainer.app.widgets.run_panels import RunHeader, header_renderable
from tui_trainer.runs import RunStore


def live_run(store: RunStore, name: str = "live", prompt: str = "Hello"):
    """A run alive by its fresh events (not launched by us: control requests still go to its control dir)."""
    r = store.create(name)
    log = EventLog(t0=time.time() - 5)
    log.add("run_start", 0.0, config={"sample": {"prompt": prompt, "every": 5}}, trainer="train", params=1234,
            world_size=1, device="cpu", device_name="Test CPU", dtype="float32", grad_accum_steps=1,
            max_steps=1000, start_step=0, resumed_from_step=None, peak_flops=None)
    for n in range(6):
        log.step(n, 5.0 - n / 10, dt=0.1)
    log.add("sample", after=0.0, step=5, prompt=prompt, texts=[" first"], source="schedule")
    log.write(r.events_file)
    return r, log


def append(run_, events: list[dict]) -> None:
    with open(run_.events_file, "a", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event) + "\n")


async def open_dashboard(pilot, run_id: str) -> DashboardScreen:
    app = pilot.app
    app.open_run(run_id)
    dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                          what="dashboard")
    await wait_for(pilot, lambda: dash.feed.status is not None and dash.view.segments, what="the replay")
    return dash


def test_the_requested_sample_stays_shown_when_a_scheduled_one_follows_in_the_same_batch(tmp_path):
    store = RunStore(tmp_path / "runs")
    r, log = live_run(store)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            dash = await open_dashboard(pilot, r.id)
            body = dash.query_one("#samples-body")
            await wait_for(pilot, lambda: "first" in text_of(body), what="the scheduled sample")
            await pilot.press("p")
            dialog = await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog) and app.screen,
                                    what="the prompt dialog")
            dialog.query_one(Input).value = "Once upon a time"
            await pilot.press("enter")
            await wait_for(pilot, lambda: dash.pending, what="the request to be sent")
            assert "waiting for your sample of “Once upon a time”" in text_of(body)
            request_id = next(iter(dash.pending))
            # What the trainer writes at that step boundary when the step is also a sample.every step:
            # the requested sample, its ack, then the scheduled sample of the config's prompt, in one burst.
            t = log.t + 1
            append(r, [
                {"v": 1, "seq": 100, "t": t, "type": "sample", "step": 10, "prompt": "Once upon a time",
                 "texts": [" there was a dragon"], "source": "control"},
                {"v": 1, "seq": 101, "t": t, "type": "control_ack", "id": request_id, "action": "sample",
                 "step": 10, "ok": True, "message": "done"},
                {"v": 1, "seq": 102, "t": t, "type": "sample", "step": 10, "prompt": "Hello",
                 "texts": [" scheduled text"], "source": "schedule"},
            ])
            await wait_for(pilot, lambda: any("Sample taken at step 10" in n for n in notes(app)),
                           what="the acknowledgement")
            for _ in range(4):  # through several throttled redraws: it stays
                shown = text_of(body)
                assert "“Once upon a time”" in shown and "there was a dragon" in shown, shown
                assert "the sample you asked for" in shown and "prompt 2/2" in shown
                await pilot.pause(0.25)
            await pilot.press("t")                        # the user moves: now the other prompt, numbered 1/2
            shown = text_of(body)
            assert "scheduled text" in shown and "prompt 1/2" in shown and "asked for" not in shown

    run(scenario)


def test_small_terminal_compact_layout_one_panel_at_a_time(tmp_path):
    store = RunStore(tmp_path / "runs")
    r, _ = live_run(store)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            dash = await open_dashboard(pilot, r.id)
            await pilot.pause(0.3)
            assert dash.has_class("-compact")
            header = dash.query_one(RunHeader)
            assert header.region.height == 2 and header.region.y == 0

            def visible() -> list[str]:
                ids = [c.id for c in dash.query(MetricChart) if c.display and c.region.height > 0]
                return ids + [w for w in ("samples", "logs") if dash.query_one(f"#{w}").region.height > 0]

            assert visible() == ["chart-loss"]
            loss = dash.query_one("#chart-loss", MetricChart)
            assert loss.region.width == 80 and loss.region.height >= 15   # the whole rest of the screen
            await pilot.press("2")
            assert visible() == ["chart-lr"]
            await pilot.press("v")
            assert visible() == ["chart-hellaswag"]
            await pilot.press("a")                        # samples: one key
            assert visible() == ["samples"]
            assert "first" in text_of(dash.query_one("#samples-body"))
            await pilot.press("o")
            assert visible() == ["logs"]
            await pilot.press("z")                        # every chart at once, on demand
            await pilot.pause(0.1)
            assert not dash.has_class("-compact") and len(visible()) >= 5
            # Runs, Help and Quit lead the footer: a narrow terminal cuts from the right.
            shown = [ab.binding.key for ab in dash.active_bindings.values() if ab.binding.show and ab.enabled]
            assert shown[:4] == ["escape", "f1", "question_mark", "ctrl+q"], shown

    run(scenario)


def test_wide_terminals_use_the_grid_and_give_charts_the_height(tmp_path):
    store = RunStore(tmp_path / "runs")
    r, _ = live_run(store)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(220, 60)) as pilot:
            dash = await open_dashboard(pilot, r.id)
            await pilot.pause(0.3)
            assert not dash.has_class("-compact") and dash.has_class("-tall")
            charts = dash.query_one("#charts")
            bottom = dash.query_one("#bottom")
            assert charts.region.height > 2 * bottom.region.height - 4
            assert all(c.region.width > 60 for c in dash.query(MetricChart))

    run(scenario)


def test_a_120x35_terminal_shows_every_chart_and_the_text_panels_at_once(tmp_path):
    store = RunStore(tmp_path / "runs")
    r, _ = live_run(store)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(120, 35)) as pilot:
            dash = await open_dashboard(pilot, r.id)
            await pilot.pause(0.3)
            assert not dash.has_class("-compact") and not dash.has_class("-tall")
            charts = [c for c in dash.query(MetricChart) if c.region.height > 0]
            assert len(charts) >= 5 and all(c.region.height >= 7 for c in charts)
            assert dash.query_one("#samples").region.height >= 6
            await pilot.press("3")                        # a chart key zooms into that chart
            assert dash.has_class("-compact") and dash.query_one("#chart-hellaswag").region.width == 120

    run(scenario)


def header_lines(view: RunView, status, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))
    console.print(header_renderable(view, status, width, now=2000.0))
    return console.export_text().rstrip("\n").split("\n")


def test_header_is_two_lines_at_every_width_and_shows_alerts():
    log = EventLog()
    log.start(max_steps=19_073)
    for n in range(3):
        log.step(n, 9.0)
    view = RunView(run_id="20260101-120000-a-rather-long-run-name")
    view.apply_many(log.events)
    for width in (60, 80, 120, 160, 220):
        lines = header_lines(view, None, width)
        assert len(lines) == 2 and all(len(line) <= width for line in lines), (width, lines)
        assert "step 3/19,073" in lines[0] and "loss 9.0000" in lines[1]
    view.alerts.append(Alert(2000.0, 2, "spike", "loss spiked to 9.0 (3.1× the recent median)", 9.0))
    lines = header_lines(view, None, 120)
    assert "⚠ 1 alert: loss spiked to 9.0" in lines[1] and len(lines) == 2
    wide = header_lines(view, None, 220)
    assert "Test CPU ×2" in wide[0] and "━" in wide[0]   # wide terminals: device facts and a progress bar


def test_a_finished_run_offers_neither_control_keys_nor_resume(tmp_path):
    store = RunStore(tmp_path / "runs")
    r = store.create("done")
    log = EventLog(t0=time.time() - 100)
    log.start(max_steps=3)
    for n in range(3):
        log.step(n, 4.0)
    log.add("run_end", status="finished", reason="reached max_steps = 3", step=3)
    log.write(r.events_file)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            dash = await open_dashboard(pilot, r.id)
            await pilot.pause(0.3)
            keys = {ab.binding.key for ab in dash.active_bindings.values() if ab.enabled}
            assert {"s", "k", "p", "e", "r"}.isdisjoint(keys) and "n" in keys
            await pilot.press("r")
            await pilot.pause(0.2)
            assert not any("resume" in n.lower() for n in notes(app))   # no "press r to resume" anywhere

    run(scenario)


def test_an_alert_from_the_trainer_shows_in_the_header(tmp_path):
    store = RunStore(tmp_path / "runs")
    r, log = live_run(store)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(80, 24)) as pilot:
            dash = await open_dashboard(pilot, r.id)
            header = dash.query_one(RunHeader)
            append(r, [{"v": 1, "seq": 50, "t": log.t + 1, "type": "alert", "step": 6, "kind": "spike",
                        "message": "loss 9.1 is 3.0× its recent median", "loss": 9.1, "grad_norm": 1.0}])
            await wait_for(pilot, lambda: "⚠ 1 alert: loss 9.1 is 3.0× its recent median (step 6)"
                           in text_of(header, 80), what="the alert in the header")
            assert header.region.height == 2

    run(scenario)
