"""What the config editor looks like at 80×24 (side panel folded into a status line, key names with their
values) and 160×48, on a fixed config. Regenerate after a deliberate layout change with ``--snapshot-update``
and look at the SVGs in __snapshots__/ first."""

from __future__ import annotations

import pytest
from console_pilot import open_editor, wait_for

from tui_trainer.app.console import GptConsole

SMALL, LARGE = (80, 24), (160, 48)

# Small enough that no machine warns about it (1 CPU rank, a few MiB), so the snapshot is the same everywhere.
FIXED_CONFIG = """# Snapshot config: a tiny model on Python's own docs.
[model]
n_layer = 2             # two blocks
n_head = 2
n_embd = 64
block_size = 64

[data]
source = "embedded"

[optim]
micro_batch_size = 4
total_batch_size = 512
max_lr = 1e-3

[schedule]
warmup_steps = 10
max_steps = 200

[system]
device = "cpu"
dtype = "float32"

[launch]
nproc_per_node = 1
"""


@pytest.fixture
def fixed_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # the title shows the path relative to here
    monkeypatch.setenv("GPT_CONSOLE_NOTIFY", "off")
    (tmp_path / "fixed.toml").write_text(FIXED_CONFIG)
    return "fixed.toml"


async def editor_ready(pilot) -> None:
    screen = await open_editor(pilot)
    await wait_for(pilot, lambda: screen._machine is not None, what="the machine probe")
    await pilot.pause(0.3)


def console(config: str) -> GptConsole:
    return GptConsole(config_path=config, runs_root="runs")


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_editor(snap_compare, fixed_config, size):
    assert snap_compare(console(fixed_config), terminal_size=size, run_before=editor_ready)


def test_editor_checks_at_80x24(snap_compare, fixed_config):
    """F7 on a small terminal: the problems and derived figures in place of the form."""
    async def checks(pilot) -> None:
        await editor_ready(pilot)
        await pilot.press("f7")
        await pilot.pause(0.3)

    assert snap_compare(console(fixed_config), terminal_size=SMALL, run_before=checks)
