"""``gpt-console plot RUN``: the dashboard's charts printed to a plain terminal (for logs, ``watch`` and CI).

The same frames as the console (chart_render via chart_catalog), from the run's event log folded once; colour
only when printing to a terminal (or with ``--color always``). Never imports torch or Textual's app, and the
parser imports nothing heavy, so the other headless commands start as fast as before.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import TextIO

from tui_trainer.app.chart_names import CHART_NAMES, X_AXES

DEFAULT_HEIGHT = 18
MIN_WIDTH, MIN_HEIGHT = 20, 6
MAX_WIDTH, MAX_HEIGHT = 1000, 500  # a typo like --height 100000 must not build a gigabyte of text


def add_plot_parser(sub, runs_root_arg) -> None:
    p = sub.add_parser("plot", help="print a run's charts to the terminal")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--metric", action="append", choices=CHART_NAMES, metavar="NAME",
                   help="chart to print (repeatable; default: every chart with data): "
                        + ", ".join(CHART_NAMES))
    p.add_argument("--width", type=int, default=None, help="columns (default: the terminal's width, or 100)")
    p.add_argument("--height", type=int, default=DEFAULT_HEIGHT,
                   help=f"rows per chart (default {DEFAULT_HEIGHT})")
    p.add_argument("--x", dest="x_axis", choices=X_AXES, default="step", help="x axis (default: step)")
    p.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    p.add_argument("--no-ema", action="store_true", help="raw lines only (no EMA smoothing)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour: on a terminal only (auto, the default), always or never")
    runs_root_arg(p)


def fold_run(run):
    """Every event the run has logged so far, folded as the dashboard folds them (a RunView)."""
    from tui_trainer.app.run_view import RunView
    view = RunView(run_id=run.id)
    follower = run.follower()
    restarts = follower.restarts
    while batch := follower.poll(max_events=50_000):
        if follower.restarts != restarts:  # the log was replaced while we read it: start over
            view.reset()
            restarts = follower.restarts
        view.apply_many(batch)
    return view


def plot_run(run, args: argparse.Namespace, out: TextIO) -> int:
    """Print the charts: 0 when at least one was drawn, 1 (a sentence on stderr) when there is nothing."""
    from rich.console import Console

    from tui_trainer.app.chart_catalog import run_specs
    from tui_trainer.app.chart_render import ChartOptions, has_data, render_chart
    width = args.width if args.width is not None else \
        max(MIN_WIDTH, min(MAX_WIDTH, shutil.get_terminal_size((100, 24)).columns))
    problems = [f"--{name} must be between {least} and {most}" for name, value, least, most in
                (("width", width, MIN_WIDTH, MAX_WIDTH), ("height", args.height, MIN_HEIGHT, MAX_HEIGHT))
                if not least <= value <= most]
    if problems:
        print(f"gpt-console plot: {'; '.join(problems)}", file=sys.stderr)
        return 2
    view = fold_run(run)
    names = tuple(args.metric) if args.metric else CHART_NAMES
    options = ChartOptions(ema=not args.no_ema, log_y=args.log_y, x_axis=args.x_axis)
    color = {"always": True, "never": False}.get(args.color, out.isatty())
    console = Console(file=out, width=width, force_terminal=color, no_color=not color,
                      color_system="truecolor" if color else None, highlight=False)
    with view.lock:
        specs = run_specs(view, names)
        drawn = [spec for spec in specs.values() if has_data(spec)]
        frames = [render_chart(spec, options, width, args.height) for spec in drawn]
    for frame in frames:
        console.print(frame, crop=True, overflow="crop", no_wrap=True)
    missing = [name for name, spec in zip(names, specs.values()) if not has_data(spec)]
    if args.metric and missing:
        print(f"gpt-console plot: {run.id} has no {', '.join(missing)} points yet", file=sys.stderr)
    if not frames:
        if not args.metric:
            print(f"gpt-console plot: {run.id} has no points to plot yet", file=sys.stderr)
        return 1
    return 0
