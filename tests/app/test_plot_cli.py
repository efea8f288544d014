"""`gpt-console plot RUN`: the dashboard's charts printed to a plain terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_chart_widgets import busy_run_log

from tui_trainer.cli import main
from tui_trainer.runs import RunStore


@pytest.fixture()
def busy_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create("busy")
    busy_run_log().write(run.events_file)
    return store, run


def test_prints_the_chosen_charts_at_the_asked_size_without_colour_in_a_pipe(busy_run, capsys):
    store, run = busy_run
    rc = main(["plot", run.id, "--runs-root", str(store.root), "--metric", "loss", "--metric", "lr",
               "--width", "70", "--height", "12"])
    out = capsys.readouterr().out
    assert rc == 0 and "\x1b[" not in out
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == 24 and all(len(line) <= 70 for line in lines)
    assert lines[0].startswith("loss · EMA · 1 alert") and lines[12].startswith("learning rate  ─ lr")
    assert "EMA" not in lines[12]  # the schedule is never smoothed
    assert any("!" in line for line in lines[1:4])  # the spike's alert mark


def test_default_is_every_chart_with_data_and_options_apply(busy_run, capsys):
    store, run = busy_run
    rc = main(["plot", run.id, "--runs-root", str(store.root), "--width", "80", "--x", "tokens", "--log-y",
               "--no-ema", "--color", "always"])
    out = capsys.readouterr().out
    assert rc == 0 and "\x1b[" in out
    for title in ("loss · log", "learning rate", "HellaSwag 0.3100", "tok/s", "grad norm", "process RSS"):
        assert title in out
    assert "EMA" not in out and "tokens (k)" in out


def test_what_cannot_be_plotted_is_said_in_one_sentence(busy_run, capsys, tmp_path):
    store, run = busy_run
    empty = store.create("empty")
    empty.events_file.write_text("")
    assert main(["plot", empty.id, "--runs-root", str(store.root)]) == 1
    assert "has no points to plot yet" in capsys.readouterr().err
    assert main(["plot", run.id, "--runs-root", str(store.root), "--width", "5"]) == 2
    assert "--width must be between 20 and 1000" in capsys.readouterr().err
    assert main(["plot", run.id, "--runs-root", str(store.root), "--height", "100000"]) == 2
    assert "--height must be between 6 and 500" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["plot", run.id, "--runs-root", str(store.root), "--metric", "nope"])
    assert e.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_plotting_never_imports_torch_or_textual(busy_run):
    store, run = busy_run
    code = ("import sys; from tui_trainer.cli import main; rc = main(['plot', sys.argv[1], '--runs-root', "
            "sys.argv[2], '--width', '60']); print(rc, 'torch' in sys.modules, 'textual.app' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, run.id, str(store.root)], capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip().split("\n")[-1] == "0 False False", result.stderr
