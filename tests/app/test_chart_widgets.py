"""Charts inside the console: what reaches the screen stays inside each chart's widget, the dashboard's chart
catalogue (memory chart, alerts, HellaSwag intervals), the system strip and the compare table."""

from __future__ import annotations

import math
import time

from console_events import EventLog
from console_pilot import run, wait_for
from test_chart_render import one_cell_everywhere

from tui_trainer.channel.schema import validate_event
from tui_trainer.app.chart_catalog import CHART_NAMES, CHARTS, chart_info, next_chart, run_specs
from tui_trainer.app.compare_table import config_differences, metrics
from tui_trainer.app.console import GptConsole
from tui_trainer.app.run_view import RunView
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.widgets.chart import MetricChart
from tui_trainer.app.widgets.system_strip import strip_text
from tui_trainer.runs import RunStore

GIB = 2**30


def rank(r: int, *, gpu: bool = False, rss: float = 1.5 * GIB) -> dict:
    return {"rank": r, "node": 0, "age_s": 0.1, "rss_bytes": int(rss), "cpu_percent": 180.0 + r,
            "host_mem_available_bytes": 12 * GIB, "host_mem_total_bytes": 24 * GIB,
            "gpu_index": r if gpu else None, "gpu_util_percent": 97.0 if gpu else None,
            "gpu_mem_used_bytes": int((70 + r) * GIB) if gpu else None,
            "gpu_mem_total_bytes": 80 * GIB if gpu else None, "gpu_power_watts": 300.0 if gpu else None,
            "gpu_temperature_c": 70.0 if gpu else None,
            "torch_max_memory_allocated_bytes": int(60 * GIB) if gpu else None}


def add_alert(log: EventLog, **payload) -> None:
    """EventLog.add names its first parameter ``kind``, which an alert's payload also has."""
    event = {"v": 1, "seq": len(log.events), "t": log.t, "type": "alert", **payload}
    assert not validate_event(event), validate_event(event)
    log.events.append(event)


def busy_run_log(steps: int = 400, gpu: bool = False) -> EventLog:
    """Every kind of point a chart draws: losses, val, HellaSwag, system figures for two ranks, an alert."""
    log = EventLog(t0=time.time() - 3600)
    log.start(max_steps=steps)
    for n in range(steps):
        loss = 3 + 5 * math.exp(-n / 80) + (30.0 if n == 200 else 0.0)
        log.add("step", 1.0, step=n, loss=loss, lr=6e-4 * min(1.0, (n + 1) / 40),
                grad_norm=0.5 + (n % 9) / 10, dt=1.0, tok_per_s=1000.0 + 3 * (n % 11),
                tokens=(n + 1) * 256, mfu=None)
        if n == 200:
            add_alert(log, step=n, kind="spike", message="loss 36.0 is 9 sigma above its recent mean",
                      loss=loss, grad_norm=4.0)
        if n % 40 == 0:
            log.add("val", 0.0, step=n, loss=3.2 + 5 * math.exp(-n / 80))
            log.add("system", 0.0, step=n, interval_s=10.0, ranks=[rank(0, gpu=gpu, rss=(1 + n / 400) * GIB),
                                                                    rank(1, gpu=gpu)])
        if n % 100 == 0 and n:
            log.add("hellaswag", 0.0, step=n, correct=25, correct_norm=25 + n // 50, total=100, acc=0.25,
                    acc_norm=(25 + n // 50) / 100)
    return log


def fold(log: EventLog) -> RunView:
    view = RunView(run_id="r")
    view.apply_many(log.events)
    return view


def screen_lines(app) -> list[str]:
    update = app.screen._compositor.render_update(full=True)
    return ["".join(segment.text for segment in strip) for strip in update.strips]


def test_dashboard_charts_paint_only_inside_their_widgets_at_every_terminal_size(tmp_path):
    """Issue 10: the loss chart's val points and the tok/s line went on into the neighbouring panels. Every
    chart frame is exactly its widget's size, and every cell it fills is one cell wide in any terminal."""
    store = RunStore(tmp_path / "runs")
    r = store.create("busy")
    busy_run_log().write(r.events_file)

    async def scenario(size):
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=size) as pilot:
            app.open_run(r.id)
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                                  what="dashboard")
            await wait_for(pilot, lambda: dash.view.step == 399, what="the whole run folded")
            await pilot.pause(0.5)
            lines = screen_lines(app)
            drawn = 0
            for chart in dash.query(MetricChart):
                region = chart.content_region
                if region.width == 0 or region.height == 0:
                    continue
                frame = chart.render()
                if hasattr(frame, "split"):  # a chart (not the centred "waiting" message)
                    rows = frame.split("\n")
                    assert len(rows) == region.height and all(row.cell_len == region.width for row in rows)
                    drawn += 1
                for y in range(region.y, region.bottom):
                    cells = lines[y][region.x:region.right]
                    odd = {ch for ch in cells if not one_cell_everywhere(ch)}
                    assert not odd, (chart.id, size, odd)
            assert drawn >= 1

    for size in ((80, 24), (160, 48)):
        run(lambda: scenario(size))


def test_waiting_charts_also_stay_one_cell_wide(tmp_path):
    store = RunStore(tmp_path / "runs")
    r = store.create("fresh")
    log = EventLog(t0=time.time())
    log.start(max_steps=10)
    log.write(r.events_file)

    async def scenario():
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(120, 35)) as pilot:
            app.open_run(r.id)
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                                  what="dashboard")
            await wait_for(pilot, lambda: dash.view.segments, what="run_start folded")
            await pilot.pause(0.5)
            lines = screen_lines(app)
            for chart in dash.query(MetricChart):
                region = chart.content_region
                cells = "".join(lines[y][region.x:region.right] for y in range(region.y, region.bottom))
                assert not {ch for ch in cells if not one_cell_everywhere(ch)}, chart.id

    run(scenario)


def test_catalogue_names_ids_and_cycling():
    assert CHART_NAMES == ("loss", "lr", "hellaswag", "toks", "grad", "memory")
    assert chart_info("memory").id == "chart-memory" and chart_info("chart-lr").name == "lr"
    assert next_chart("chart-memory") == CHARTS[0].id and next_chart("chart-loss", -1) == "chart-memory"
    try:
        chart_info("nope")
    except KeyError as e:
        assert "choose from loss, lr" in str(e)
    else:
        raise AssertionError("an unknown chart must be refused")


def test_specs_follow_the_view_memory_per_rank_alerts_and_hellaswag_intervals():
    view = fold(busy_run_log(gpu=True))
    specs = run_specs(view)
    assert list(specs) == [info.id for info in CHARTS]
    memory = specs["chart-memory"]
    assert [line.label for line in memory.lines] == ["rank 0", "rank 1"]
    assert memory.title.startswith("GPU memory") and memory.hlines[0][0] == 80.0
    assert abs(memory.lines[1].series.last() - 71.0) < 1e-9
    assert specs["chart-loss"].alerts == [(200, "spike")]
    assert not specs["chart-lr"].lines[0].smooth
    hellaswag = specs["chart-hellaswag"].lines[0]
    lo, hi = hellaswag.band
    assert len(lo) == len(hellaswag.series) == 3
    assert all(a < v < b for a, v, b in zip(lo.values(), hellaswag.series.values(), hi.values()))
    assert specs["chart-hellaswag"].title == "HellaSwag 0.3100 · n=100"


def test_a_resume_drops_the_alerts_and_memory_points_it_re_runs():
    log = busy_run_log()
    log.start(start_step=100, resumed=100, max_steps=400)
    view = fold(log)
    assert view.alerts == [] and view.series["memory_rank0"].last_step() == 80


def test_system_strip_per_rank_then_summarised_and_never_wider():
    cpu = {"ranks": [rank(0), rank(1)]}
    line = strip_text(cpu, 200).plain
    assert "r0 CPU 180% RSS 1.5G" in line and "r1 CPU 181%" in line and "host free 12.0/24G" in line
    gpu = {"ranks": [rank(r, gpu=True) for r in range(8)]}
    wide = strip_text(gpu, 300).plain
    assert "r7 GPU 97% 77.0/80G" in wide
    narrow = strip_text(gpu, 60).plain
    assert narrow.startswith("8 ranks · GPU 97% · mem 70.0–77.0G") and len(narrow) <= 60
    assert strip_text(None, 30).plain == "system: no figures yet"
    nulls = dict(rank(0), rss_bytes=None, cpu_percent=None)
    assert "r0 —" in strip_text({"ranks": [nulls]}, 80).plain


def test_compare_table_lists_only_differing_keys_and_the_metrics():
    rows = config_differences([{"optim": {"lr": 6e-4, "wd": 0.1}, "model": {"n_layer": 2}},
                               {"optim": {"lr": 3e-4, "wd": 0.1}, "model": {"n_layer": 2}, "seed": 1}])
    assert rows == [("optim.lr", ["0.0006", "0.0003"]), ("seed", ["—", "1"])]
    m = metrics(fold(busy_run_log()))
    assert m["steps"] == "400" and m["HellaSwag (best)"] == "0.3100"
    assert float(m["val loss (best)"]) < float(m["val loss (final)"]) + 1e-9


def test_compare_screen_shows_the_differences_table_above_the_charts(tmp_path):
    store = RunStore(tmp_path / "runs")
    runs = []
    for name, prompt, steps in (("a", "Hello", 30), ("b", "Once upon a time", 50)):
        r = store.create(name)
        log = EventLog(t0=time.time() - 3600)
        log.start(max_steps=steps, prompt=prompt)
        for n in range(steps):
            log.step(n, 5.0 - n / steps)
        log.add("run_end", status="finished", reason="reached max_steps", step=steps - 1)
        log.write(r.events_file)
        runs.append(r)

    async def scenario():
        from tui_trainer.app.screens.compare import CompareScreen
        from textual.widgets import Static

        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(120, 35)) as pilot:
            app.open_compare([r.id for r in runs])
            cmp = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen,
                                 what="compare")
            await wait_for(pilot, lambda: all(v.end_status for v in cmp.views), what="both replays")
            await pilot.pause(0.5)
            lines = screen_lines(app)
            table = cmp.query_one("#compare-table", Static)
            shown = "\n".join(lines[table.region.y:table.region.bottom])
            assert "sample.prompt" in shown and "Once upon a time" in shown
            assert "train loss (final)" in shown and "4.0333" in shown and "4.0200" in shown
            charts = cmp.query_one("#compare-charts")
            assert table.region.bottom <= charts.region.y  # above the overlaid charts

    run(scenario)
