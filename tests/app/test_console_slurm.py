"""The console with launch.backend = "slurm" against a real Slurm cluster (.ci/slurm-up): launch from the
editor submits a job, the dashboard follows it like a local run, `s` stops it gracefully (the trainer
checkpoints), the runs screen lists it with its state."""

from __future__ import annotations

import pytest
from console_pilot import SIZE, open_editor, run, wait_for
from runs_helpers import tiny_toml

from tui_trainer.app.console import GptConsole
from tui_trainer.app.screens.dashboard import DashboardScreen
from tui_trainer.app.screens.dialogs import ConfirmDialog
from tui_trainer.app.screens.runs import RunsScreen
from tui_trainer.runs import RunStore

pytestmark = pytest.mark.slow

START_TIMEOUT = 240  # the job is scheduled, torch imported, shards prepared, first steps


def slurm_tiny_config(tmp_path, shared_data):
    """runs_helpers' tiny run (2 CPU ranks), long, without evaluations, submitted to Slurm."""
    text = tiny_toml(shared_data, tmp_path / "cache", max_steps=100_000, hellaswag=False)
    path = tmp_path / "slurm-tiny.toml"
    path.write_text("# A tiny run submitted to Slurm from the console.\n"
                    + text.replace("[launch]\n", '[launch]\nbackend = "slurm"\n') + "\n[slurm]\ncpus_per_task = 2\n")
    return path


async def confirm(pilot) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), what="a confirmation dialog")
    await pilot.press("y")


def test_a_slurm_run_launched_from_the_console_behaves_like_a_local_one(tmp_path, shared_data, slurm_runs_root):
    config = slurm_tiny_config(tmp_path, shared_data)
    store = RunStore(slurm_runs_root)

    async def session():
        app = GptConsole(config_path=str(config), runs_root=str(store.root))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await open_editor(pilot)
            await pilot.press("f5")
            await confirm(pilot)
            dash = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                                  timeout=60, what="the run dashboard")
            [launched] = store.list()
            assert (launched.launch_info() or {}).get("slurm_job_id", "").isdigit()
            assert (launched.dir / "job.sbatch").exists()
            view = dash.view
            loss = view.series["train_loss"]
            await wait_for(pilot, lambda: len(loss) >= 3, timeout=START_TIMEOUT, what="steps from the Slurm job")
            assert view.world_size == 2
            try:
                await wait_for(pilot, lambda: dash.feed.status and dash.feed.status.state == "running",
                               what="the running status")
            except AssertionError as e:
                raise AssertionError(f"{e}; status {dash.feed.status}; run.status() {launched.status()}") from None

            await pilot.press("s")
            await confirm(pilot)
            await wait_for(pilot, lambda: dash.feed.status and dash.feed.status.state == "stopped",
                           timeout=120, what="the graceful stop")
            await wait_for(pilot, lambda: any(c[2] == "stop" for c in view.checkpoints),
                           what="the stop checkpoint")
            assert launched.checkpoints(), "the stop wrote no checkpoint"

            await pilot.press("escape")
            runs = await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen,
                                  what="the runs screen")
            await wait_for(pilot, lambda: runs.rows.get(launched.id) and runs.rows[launched.id].state == "stopped",
                           what="the stopped Slurm run in the list")

    run(session)
