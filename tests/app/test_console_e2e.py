"""The console end to end, on a real torchrun run of a tiny config (CPU): edit, save, launch, watch the charts
grow, a sample and a HellaSwag point arrive, sample on demand, close the console (the run keeps going), reopen
and find it with its history, stop it, resume it, stop it again."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import time
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
from tui_trainer.runs import RunStore, launcher, procs
from tui_trainer.runs.files import read_json
from tui_trainer.runs.status import launch_processes

pytestmark = pytest.mark.slow

START_TIMEOUT = 180   # torch import, data preparation and the first steps, on a busy 2-core machine
EVENT_TIMEOUT = 120


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # `timeout` sends SIGTERM: unwind so the finalizer still runs


def _launch_entries(run) -> list[dict]:
    """Process stamps of every launch of a run (the current one and its history)."""
    launch = read_json(run.launch_file) or {}
    entries = launch_processes(launch)
    for earlier in launch.get("history") or []:
        if isinstance(earlier, dict):
            entries += launch_processes(earlier)
    return entries


def _end_everything(store: RunStore, supervisors: list) -> list[int]:
    """SIGKILL every process group this test launched: supervisors (session leaders, torchrun in their group),
    ranks (each leads its own), and any descendant. Returns the pids still alive afterwards."""
    for run in store.list():
        if run.is_running():
            try:
                run.stop(timeout=20)          # graceful first: the run's files end tidy
            except Exception:  # noqa: BLE001 - whatever went wrong, the kills below still happen
                pass
    # Only supervisors not reaped yet: a reaped one's pid may already belong to someone else's process.
    roots = [p.pid for p in supervisors if p.poll() is None]
    for run in store.list():
        launcher.kill_launch(run)
        for entry in _launch_entries(run):
            procs.kill_group(entry, signal.SIGKILL)
    stats = procs.all_stats()
    for pid in roots:
        for child in procs.descendants(pid, stats):
            procs.kill_group(procs.stamp(child), signal.SIGKILL)  # a rank leads its own group
        with contextlib.suppress(ProcessLookupError):  # already gone: nothing left to end
            os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        alive = [p.pid for p in supervisors if p.poll() is None]
        alive += [e["pid"] for run in store.list() for e in _launch_entries(run) if procs.is_alive(e)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.fixture
def store(tmp_path, request):
    """The runs root of the test; whatever the outcome (failure, timeout's SIGTERM, Ctrl-C), every process the
    test launched is ended before pytest moves on, so a failed run never loads the machine for later tests."""
    runs = RunStore(tmp_path / "runs")
    first_child = len(launcher._children)
    previous = signal.signal(signal.SIGTERM, _interrupted)

    def finalize() -> None:
        signal.signal(signal.SIGTERM, previous)
        survivors = _end_everything(runs, launcher._children[first_child:])
        assert not survivors, f"processes {survivors} survived SIGKILL"

    request.addfinalizer(finalize)
    return runs


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
    await pilot.press("y")  # Enter would press the focused button, which is Cancel for a stop


def test_edit_launch_watch_control_close_reopen_stop_resume(tmp_path, shared_data, store):
    config = tiny_config(tmp_path, shared_data)

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
            await wait_for(pilot, lambda: any("Sample taken" in n for n in notes(app)),
                           what="the acknowledgement")
            shown = text_of(dash.query_one("#samples-body"))
            assert "“Once upon a time”" in shown and "the sample you asked for" in shown
            return dash.run.id
        # Leaving the block closes the console.

    run_id = None

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
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
