"""Fixtures for tests that launch the real trainer under real torchrun: a tiny 2-rank CPU config."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs_helpers import tiny_toml


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One shard cache for every real run of the session (the first run tokenises, the others reuse)."""
    return tmp_path_factory.mktemp("gpt-console-cache")


@pytest.fixture
def tiny_config(tmp_path, shared_data, data_cache):
    def make(max_steps: int, **kw) -> Path:
        path = tmp_path / f"tiny-{max_steps}.toml"
        path.write_text(tiny_toml(shared_data, data_cache, max_steps=max_steps, **kw))
        return path
    return make


@pytest.fixture(autouse=True)
def no_run_outlives_its_test(tmp_path):
    """A test that fails half-way must not leave its trainer running (some train for 100,000 steps)."""
    yield
    from tui_trainer.runs import Run
    from tui_trainer.runs.launcher import kill_launch
    from tui_trainer.runs.status import any_alive
    for launch_file in tmp_path.rglob("launch.json"):
        run = Run(launch_file.parent)
        if any_alive(run.launch_info() or {}):
            kill_launch(run)
