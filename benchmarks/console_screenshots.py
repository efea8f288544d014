"""Make the README's console screenshots (SVG) from a real, finished CPU run of a small config.

    .venv/bin/python -m benchmarks.console_screenshots [--runs-root DIR] [--out docs]

Trains a 2-layer model on Tiny Shakespeare for a few hundred steps through the real launcher (torchrun, CPU),
with HellaSwag on a slice of the validation file, then opens the console headless and saves the run
dashboard, the runs screen and the config editor as SVG. Needs the shared data (GPT_CONSOLE_SHARED_DATA or
../shared/data) and the offline tokenizer (TIKTOKEN_CACHE_DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZE = (150, 46)
SMALL = (80, 24)


def small_config(shared: Path, work: Path) -> str:
    return f"""# Screenshot run: a 2-layer GPT on Tiny Shakespeare (CPU, a few minutes).
[model]
n_layer = 2
n_head = 4
n_embd = 64
block_size = 64

[data]
source = "shakespeare"
path = "{shared / 'tinyshakespeare.txt'}"
cache_dir = "{work / 'cache'}"

[optim]
micro_batch_size = 4
total_batch_size = 256
max_lr = 3e-3

[schedule]
warmup_steps = 20
max_steps = 240

[eval]
every = 20
val_steps = 4
hellaswag_every = 40
hellaswag_examples = 32
hellaswag_path = "{shared / 'hellaswag_val.jsonl.gz'}"

[sample]
every = 40
prompt = "ROMEO:"
count = 2
max_tokens = 24

[checkpoint]
every = 120

[system]
device = "cpu"
dtype = "bfloat16"
"""


async def shoot(runs_root: Path, run_id: str, out: Path) -> None:
    from tui_trainer.app.console import GptConsole
    from tui_trainer.app.screens.dashboard import DashboardScreen
    from tui_trainer.app.widgets.config_form import ConfigForm

    app = GptConsole(runs_root=str(runs_root))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(1.5)
        app.save_screenshot(filename="console-runs.svg", path=str(out))
        app.open_run(run_id)
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        while screen.view.end_status is None:
            await pilot.pause(0.1)
        await pilot.pause(1.5)
        app.save_screenshot(filename="console-dashboard.svg", path=str(out))
        app.open_config("configs/shakespeare.toml")  # relative, as a user types it (cwd is the repo)
        await pilot.pause(0.2)
        while not app.screen.query_one(ConfigForm).ready:
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        app.save_screenshot(filename="console-editor.svg", path=str(out))

    # An 80×24 terminal (many SSH sessions): the compact dashboard, one chart at a time.
    small = GptConsole(runs_root=str(runs_root))
    async with small.run_test(size=SMALL) as pilot:
        await pilot.pause(1.5)
        small.open_run(run_id)
        await pilot.pause(0.2)
        screen = small.screen
        while screen.view.end_status is None:
            await pilot.pause(0.1)
        await pilot.pause(1.5)
        small.save_screenshot(filename="console-dashboard-80x24.svg", path=str(out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-root", help="reuse this runs root (default: a temporary one)")
    parser.add_argument("--run", help="screenshot this existing run instead of training a new one")
    parser.add_argument("--out", default=str(REPO / "docs"))
    args = parser.parse_args(argv)

    from tui_trainer.runs import RunStore

    shared = Path(os.environ.get("GPT_CONSOLE_SHARED_DATA", REPO.parent / "shared" / "data"))
    work = Path(tempfile.mkdtemp(prefix="gpt-console-shots-"))
    store = RunStore(args.runs_root or work / "runs")
    if args.run:
        run = store.get(args.run)
    else:
        config = work / "shakespeare-small.toml"
        config.write_text(small_config(shared, work))
        run = store.launch(config_path=config)
        print(f"training {run.id} in {run.dir} …", flush=True)
        while not run.status().final:
            time.sleep(2)
        print(f"{run.id}: {run.status().label}", flush=True)
    out = Path(args.out).resolve()
    os.chdir(REPO)
    asyncio.run(shoot(store.root, run.id, out))
    print(f"wrote {args.out}/console-dashboard.svg, console-runs.svg, console-editor.svg, "
          "console-dashboard-80x24.svg")


if __name__ == "__main__":
    sys.exit(main())
