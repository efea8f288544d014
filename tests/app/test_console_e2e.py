"""The console end to end, on a real torchrun run of a tiny config (CPU): edit, save, launch, watch the charts
grow, a sample and a HellaSwag point arrive, sample on demand, close the console (the run keeps going), reopen
and find it with its history, stop it, resume it, stop it again."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from console_pilot import SIZE, notes, open_editor, run, text_of, type_into, wait_for
from textual.widgets import DataTable, Input

from tui_trainer.app.chart_render import has_data
from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.screens.dialogs import ConfirmDialog, PromptDialog
from tui_trainer.app.screens.runs import RunsScreen
from tui_trainer.app.widgets.chart import MetricChart
from tui_trainer.runs import RunStore

pytestmark = pytest.mark.slow

START_TIMEOUT = 180   # torch import, data preparation and the first steps, on a busy 2-core machine
EVENT_TIMEOUT = 120


def tiny_config(tmp_path: Path, shared_data: Path) -> Path:
    """A 2-layer, 32-wide GPT on Tiny Shakespeare; samples every 5 steps, HellaSwag (8 examples) every 10."""
    fixture = tmp_path / "hellaswag_tiny.jsonl"
    with gzip.open(shared_data / "hellaswag_val.jsonl.gz", "rt", encoding="utf-8") as f:
        fixture.write_text("".join(next(f) for _ in range(8)))
    path = tmp_path / "tiny.toml"
    path.write_text(f"""# Tiny console test run — this comment must survive saving.
[model]
n_layer = 2    # two blocks
n_head = 2
n_embd = 32
block_size = 32

[data]
source = "shakespeare"
path = "{shared_data / 'tinyshakespeare.txt'}"
cache_dir = "{tmp_path / 'cache'}"
shard_tokens = 200000

[optim]
micro_batch_size = 4
total_batch_size = 128
max_lr = 3e-3

[schedule]
warmup_steps = 2
max_steps = 30  # changed in the form

[eval]
every = 5
val_steps = 2
hellaswag_every = 10
hellaswag_examples = 8
hellaswag_path = "{fixture}"

[sample]
every = 5
count = 2
max_tokens = 8

[checkpoint]
every = 0

[system]
device = "cpu"
dtype = "float32"
heartbeat_seconds = 1.0

[launch]
nproc_per_node = 1
""")
    return path


async def dashboard(pilot) -> DashboardScreen:
    app = pilot.app
    return await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                          timeout=60, what="the run dashboard")


async def confirm(pilot) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), what="a confirmation dialog")
    await pilot.press("enter")


def test_edit_launch_watch_control_close_reopen_stop_resume(tmp_path, shared_data):
    config = tiny_config(tmp_path, shared_data)
    store = RunStore(tmp_path / "runs")

    async def first_session() -> str:
        app = GptConsole(config_path=str(config), runs_root=str(store.root))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            editor = await open_editor(pilot)
            await type_into(pilot, editor, "schedule.max_steps", "5000")
            assert "640.0k  (5,000 steps)" in text_of(editor.query_one("#derived"))  # total tokens: 128 × 5000
            await type_into(pilot, editor, "schedule.warmup_steps", "9000")
            assert "warmup_steps" in text_of(editor.query_one("#problems"))
            await type_into(pilot, editor, "schedule.warmup_steps", "2")
            assert "valid" in text_of(editor.query_one("#problems"))
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "max_steps = 5000  # changed in the form" in config.read_text(),
                           what="the saved file")
            assert "# Tiny console test run — this comment must survive saving." in config.read_text()

            await pilot.press("f5")
            await confirm(pilot)
            dash = await dashboard(pilot)
            view = dash.view
            loss = view.series["train_loss"]
            await wait_for(pilot, lambda: len(loss) >= 2, timeout=START_TIMEOUT, what="the first steps")
            seen = len(loss)
            await wait_for(pilot, lambda: len(loss) > seen, timeout=EVENT_TIMEOUT, what="the loss chart to grow")
            await wait_for(pilot, lambda: has_data(dash.query_one("#chart-loss", MetricChart).spec),
                           what="the loss chart to draw the steps")
            await wait_for(pilot, lambda: len(view.samples) >= 1, timeout=EVENT_TIMEOUT, what="a sample")
            await wait_for(pilot, lambda: view.hellaswag_points, timeout=EVENT_TIMEOUT, what="a HellaSwag point")
            assert 0 <= view.hellaswag_points[0].acc_norm <= 1 and view.hellaswag_points[0].total == 8
            assert len(view.series["hellaswag"]) >= 1
            # The dashboard redraws at most five times a second: the panel shows the sample on its next refresh.
            await wait_for(pilot, lambda: "Samples" in text_of(dash.query_one("#samples-body")),
                           what="the samples panel to show the sample")

            # Sample now, with a prompt typed into the dialog.
            await pilot.press("p")
            dialog = await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog) and app.screen,
                                    what="the prompt dialog")
            dialog.query_one(Input).value = "Once upon a time"
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Once upon a time" in view.samples.by_prompt, timeout=EVENT_TIMEOUT,
                           what="the requested sample")
            assert view.samples.by_prompt["Once upon a time"][-1].source == "control"
            await wait_for(pilot, lambda: any("sample done" in n for n in notes(app)), what="the acknowledgement")
            assert "Once upon a time" in text_of(dash.query_one("#samples-body"))
            return dash.run.id
        # Leaving the block closes the console.

    run_id = None
    try:
        async def session_one():
            nonlocal run_id
            run_id = await first_session()

        run(session_one)
        # Closing the console never stops a run.
        assert store.get(run_id).status().state == "running"

        async def second_session():
            app = GptConsole(runs_root=str(store.root))
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                runs = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen,
                                      what="the runs screen")
                await wait_for(pilot, lambda: run_id in runs.rows and runs.rows[run_id].running,
                               what="the running run in the table")
                runs.query_one(DataTable).focus()
                await pilot.press("enter")
                dash = await dashboard(pilot)
                view = dash.view
                # History replayed: earlier steps, the earlier samples, HellaSwag.
                await wait_for(pilot, lambda: view.samples.by_prompt.get("Once upon a time"),
                               what="the replayed history")
                assert view.series["train_loss"].x("step")[0] == 0 and view.hellaswag_points
                await wait_for(pilot, lambda: dash.feed.status and dash.feed.status.state == "running",
                               what="the process status")

                await pilot.press("s")
                await confirm(pilot)
                await wait_for(pilot, lambda: dash.feed.status and dash.feed.status.state == "stopped",
                               timeout=EVENT_TIMEOUT, what="the run to stop")
                await wait_for(pilot, lambda: any(c[2] == "stop" for c in view.checkpoints),
                               what="the stop checkpoint event")
                stopped_at = view.step

                await pilot.press("r")                                # resume from the stop checkpoint
                await wait_for(pilot, lambda: len(view.segments) == 2, timeout=START_TIMEOUT,
                               what="the resumed trainer's run_start")
                assert view.segments[1].resumed_from_step is not None
                await wait_for(pilot, lambda: view.step is not None and view.step > stopped_at,
                               timeout=EVENT_TIMEOUT, what="steps after the resume")
                steps = view.series["train_loss"].x("step")
                assert all(b > a for a, b in zip(steps, steps[1:]))  # stitched: no step twice
                assert view.resume_steps() == [view.segments[1].start_step]

                await pilot.press("s")
                await confirm(pilot)
                await wait_for(pilot, lambda: dash.feed.status and dash.feed.status.state == "stopped"
                               and dash.feed.status.launch == 2, timeout=EVENT_TIMEOUT, what="the second stop")
                await pilot.press("escape")
                await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to runs")
                await wait_for(pilot, lambda: app.screen.rows.get(run_id) and
                               app.screen.rows[run_id].state == "stopped", what="the stopped row")

        run(second_session)
    finally:
        for leftover in store.list():  # never leave a trainer running behind a failed test
            if leftover.is_running():
                leftover.stop(timeout=30)
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
