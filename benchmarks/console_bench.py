"""Console benchmarks: cold start to first frame, one chart frame at 1M points, and event-burst catch-up.

    .venv/bin/python -m benchmarks.console_bench            # all three
    .venv/bin/python -m benchmarks.console_bench --only chart

Figures go to stdout; docs/benchmarks.md ("Console") records a run on the reference machine.

- cold start: a child process opens the console in a pseudo-terminal (Textual's real terminal driver) on an
  empty runs root, exits right after its first frame is drawn, and reports the time from interpreter start to
  that frame; the parent also reports the child's whole wall time (interpreter start to exit).
- chart: one chart frame (min/max thinning + plotext build + Rich Text) with a 1M-point train loss (+ its EMA
  layer), a 20k-point val loss and an alert at 120×30 cells, for each x axis, with/without EMA and log-y; the
  median of 5 frames each; and the same layers through textual-plotext's Plot for comparison.
- dashboard: every dashboard chart (loss, lr, HellaSwag, tok/s, grad norm, memory) of a 1M-step run redrawn
  once, at the chart sizes of a 160×48 and a 220×60 terminal; budget 50 ms.
- burst: a dashboard open on a live run while a writer appends events at a fixed rate; reports how many
  RunUpdated messages the UI handled for how many events, and how far behind the UI was when the writer stopped.
- replay: a dashboard opened on a finished run of 1M step events: time until all of it is shown, and the
  longest pause between UI updates meanwhile (the UI keeps drawing while the follower thread folds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------- cold start
def _first_frame_child(runs_root: str, config: str | None) -> None:
    """Runs in the child: open the console, exit after the first frame, report when that frame was drawn."""
    from tui_trainer.app.console import GptConsole  # the import is part of what is measured

    class FirstFrame(GptConsole):
        def on_mount(self) -> None:  # Textual runs GptConsole.on_mount too (handlers run up the MRO)
            self.call_after_refresh(self._done)

        def _done(self) -> None:
            screen = self.screen
            if not (screen.is_mounted and screen.children and all(w.is_mounted for w in screen.children)):
                self.call_after_refresh(self._done)  # the pushed screen has not been drawn yet
                return
            # From the parent's launch of this process (interpreter start-up included) to the first frame.
            self.first_frame = time.time() - float(os.environ["CONSOLE_BENCH_T0"])
            self.exit()

    app = FirstFrame(config_path=config, runs_root=runs_root)
    app.run()
    with open(os.environ["CONSOLE_BENCH_OUT"], "w") as f:
        json.dump({"first_frame_s": app.first_frame, "torch_loaded": "torch" in sys.modules,
                   "screen": type(app.screen).__name__ if app.screen_stack else ""}, f)


def _baseline_child(runs_root: str, config: str | None) -> None:
    """The issue's reference point: a minimal Textual + plotext app, measured the same way."""
    import importlib

    from textual.app import App
    from textual.widgets import Static
    importlib.import_module("textual_plotext")  # loaded, as the reference chart app would

    class Minimal(App):
        def compose(self):
            yield Static("hello")

        def on_mount(self) -> None:
            self.call_after_refresh(self._done)

        def _done(self) -> None:
            self.first_frame = time.time() - float(os.environ["CONSOLE_BENCH_T0"])
            self.exit()

    app = Minimal()
    app.run()
    with open(os.environ["CONSOLE_BENCH_OUT"], "w") as f:
        json.dump({"first_frame_s": app.first_frame, "torch_loaded": "torch" in sys.modules}, f)


def bench_cold_start(repeats: int = 7, config: str | None = None, child: str = "_first_frame_child") -> dict:
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            env = dict(os.environ, CONSOLE_BENCH_OUT=str(out), TERM="xterm-256color", COLUMNS="160", LINES="48")
            leader, follower = pty.openpty()
            t0 = time.perf_counter()
            env["CONSOLE_BENCH_T0"] = repr(time.time())
            proc = subprocess.Popen(
                [sys.executable, "-c", f"import sys; from benchmarks.console_bench import {child} as f; "
                 "f(sys.argv[1], sys.argv[2] or None)", str(Path(tmp) / "runs"), config or ""],
                stdin=follower, stdout=follower, stderr=follower, cwd=REPO, env=env, close_fds=True)
            os.close(follower)
            drained = threading.Thread(target=_drain, args=(leader,), daemon=True)
            drained.start()
            proc.wait(timeout=60)
            wall = time.perf_counter() - t0
            os.close(leader)
            data = json.loads(out.read_text())
            data["process_wall_s"] = wall
            results.append(data)
    return {
        "first_frame_ms_median": 1000 * statistics.median(r["first_frame_s"] for r in results),
        "first_frame_ms_max": 1000 * max(r["first_frame_s"] for r in results),
        "process_wall_ms_median": 1000 * statistics.median(r["process_wall_s"] for r in results),
        "torch_loaded": any(r["torch_loaded"] for r in results),
        "repeats": repeats,
    }


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


# ------------------------------------------------------------------------------------------------ chart
def _million_point_view(points: int):
    """A RunView as a 1M-step run leaves it: every step series full, val every 50 steps, HellaSwag every 10k,
    system figures (two ranks) every 1,000 steps, a NaN and a spike (which must survive thinning)."""
    import numpy as np

    from tui_trainer.app.run_view import Alert, RunView
    from tui_trainer.app.series import Series, wilson_interval

    rng = np.random.default_rng(0)
    steps = np.arange(points, dtype=np.float64)
    tokens, wall = (steps + 1) * 524288, steps * 0.25
    loss = 3 + 8 * np.exp(-steps / (points / 5)) + 0.2 * rng.standard_normal(points)
    loss[points // 3] = math.nan
    loss[points // 2] = 40.0
    view = RunView(run_id="bench")
    s = view.series
    s["train_loss"].extend(steps, loss, tokens, wall)
    s["lr"].extend(steps, 6e-4 * np.minimum(1.0, (steps + 1) / 700), tokens, wall)
    s["grad_norm"].extend(steps, 0.5 + 0.2 * rng.random(points), tokens, wall)
    s["tok_per_s"].extend(steps, 5e5 + 1e4 * rng.standard_normal(points), tokens, wall)
    every = np.arange(0, points, 50)
    s["val_loss"].extend(steps[every], loss[every] + 0.05, tokens[every], wall[every])
    for k in range(0, points, 10_000):
        correct = 2500 + k // 1000
        lo, hi = wilson_interval(correct, 10042)
        for name, value in (("hellaswag", correct / 10042), ("hellaswag_lo", lo), ("hellaswag_hi", hi)):
            s[name].append(k, value, tokens=tokens[k], wall=wall[k])
    mem = np.arange(0, points, 1000)
    for r in range(2):
        s[f"memory_rank{r}"] = Series(f"memory_rank{r}")
        s[f"memory_rank{r}"].extend(steps[mem], 60 + r + rng.random(len(mem)), tokens[mem], wall[mem])
    view.system = {"ranks": [{"rank": r, "gpu_mem_used_bytes": 1, "gpu_mem_total_bytes": 80 * 2**30}
                             for r in range(2)]}
    view.alerts = [Alert(0.0, points // 2, "spike", "loss 40", 40.0)]
    return view


def bench_chart(points: int = 1_000_000, width: int = 120, height: int = 30, repeats: int = 5) -> dict:
    """One chart (the loss chart) at ``width`` × ``height``, for each x axis, with/without EMA and log-y."""
    from tui_trainer.app.chart_catalog import run_specs
    from tui_trainer.app.chart_render import ChartOptions, Colors, render_chart

    view = _million_point_view(points)
    spec = run_specs(view, ("loss",))["chart-loss"]
    spec.resume_steps = [points // 4]
    frames = {}
    for axis in ("step", "tokens", "wall"):
        for ema in (True, False):
            for log_y in (False, True):
                opts = ChartOptions(ema=ema, log_y=log_y, x_axis=axis)
                render_chart(spec, opts, width, height, Colors())  # warm-up
                times, cpu = [], []
                for _ in range(repeats):
                    t, c = time.perf_counter(), time.process_time()
                    render_chart(spec, opts, width, height, Colors())
                    times.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                name = f"{axis}{' ema' if ema else ''}{' log' if log_y else ''}"
                frames[name] = (1000 * statistics.median(times), 1000 * statistics.median(cpu))
    walls, cpus = [f[0] for f in frames.values()], [f[1] for f in frames.values()]
    return {"points": points, "val_points": len(view.series["val_loss"]), "size": f"{width}x{height}",
            "wall_ms": {k: round(v[0], 1) for k, v in frames.items()},
            "wall_ms_median": round(statistics.median(walls), 1), "wall_ms_worst": round(max(walls), 1),
            "cpu_ms_median": round(statistics.median(cpus), 1), "cpu_ms_worst": round(max(cpus), 1)}


def bench_dashboard_frame(points: int = 1_000_000, repeats: int = 7) -> dict:
    """Every dashboard chart redrawn once (what a frame costs when a step event moved every series), at the
    chart sizes a 160×48 and a 220×60 terminal give them (3 × 2 grid), median over ``repeats`` frames."""
    from tui_trainer.app.chart_catalog import run_specs
    from tui_trainer.app.chart_render import ChartOptions, Colors, render_chart

    view = _million_point_view(points)
    specs = run_specs(view)
    results = {}
    for terminal, (w, h) in (("160x48", (52, 13)), ("220x60", (72, 17))):
        for options in (ChartOptions(), ChartOptions(log_y=True, x_axis="tokens")):
            for spec in specs.values():
                render_chart(spec, options, w, h, Colors())  # warm-up
            times, cpu = [], []
            for _ in range(repeats):
                t, c = time.perf_counter(), time.process_time()
                for spec in specs.values():
                    render_chart(spec, options, w, h, Colors())
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            key = f"{terminal} ({len(specs)} charts of {w}x{h}){' log tokens' if options.log_y else ''}"
            results[key] = {"wall_ms": round(1000 * statistics.median(times), 1),
                            "cpu_ms": round(1000 * statistics.median(cpu), 1)}
    return {"points": points, "frame": results, "budget_ms": 50}


def bench_textual_plotext(points: int = 1_000_000, width: int = 120, height: int = 30,
                          repeats: int = 5) -> dict:
    """The same thinned loss layers drawn through textual-plotext's Plot (what its PlotextPlot widget renders)
    instead of our figure: the choice between the two is not a speed question if these match."""
    from rich.text import Text
    from textual_plotext.plot import Plot

    from tui_trainer.app.chart_catalog import run_specs
    from tui_trainer.app.chart_render import ChartOptions, Colors, _layers

    view = _million_point_view(points)
    spec = run_specs(view, ("loss",))["chart-loss"]
    times, cpu = [], []
    for _ in range(repeats + 1):
        t, c = time.perf_counter(), time.process_time()
        plot = Plot()
        plot.plotsize(width, height)
        plot._set_size(width, height)
        for layer in _layers(spec, ChartOptions(), Colors(), width - 8):
            if layer.kind == "points":
                plot.scatter(layer.x.tolist(), layer.y.tolist(), marker="◉", color=layer.color)
            else:
                plot.plot(layer.x.tolist(), layer.y.tolist(), marker="braille", color=layer.color)
        Text.from_ansi(plot.build())
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"size": f"{width}x{height}", "wall_ms": round(1000 * statistics.median(times[1:]), 1),
            "cpu_ms": round(1000 * statistics.median(cpu[1:]), 1)}


# ------------------------------------------------------------------------------------------------ burst
def bench_burst(rate: int = 500, seconds: float = 10.0) -> dict:
    """A dashboard on a run whose log grows by ``rate`` step events a second."""
    import asyncio

    from tui_trainer.app.console import GptConsole
    from tui_trainer.app.messages import RunUpdated
    from tui_trainer.app.screens.dashboard import DashboardScreen
    from tui_trainer.runs import RunStore

    tmp = tempfile.mkdtemp()
    store = RunStore(Path(tmp) / "runs")
    run = store.create("burst")
    (run.dir / "events.jsonl").write_text("")
    stats = {"handled": 0}

    def hook(message) -> None:
        if isinstance(message, RunUpdated):
            stats["handled"] += 1

    def writer(stop_at: float, written: list) -> None:
        seq = 0
        with open(run.dir / "events.jsonl", "a") as f:
            f.write(json.dumps({"v": 1, "seq": seq, "t": time.time(), "type": "run_start", "config": {},
                                "trainer": "train", "params": 1, "world_size": 1, "device": "cpu",
                                "device_name": "cpu", "dtype": "float32", "grad_accum_steps": 1,
                                "max_steps": 10**9, "start_step": 0, "resumed_from_step": None,
                                "peak_flops": None}) + "\n")
            step = 0
            next_t = time.perf_counter()
            while time.perf_counter() < stop_at:
                seq += 1
                f.write(json.dumps({"v": 1, "seq": seq, "t": time.time(), "type": "step", "step": step,
                                    "loss": 3 + math.sin(step / 50), "lr": 6e-4, "grad_norm": 1.0, "dt": 0.002,
                                    "tok_per_s": 1e5, "tokens": step * 1024, "mfu": None}) + "\n")
                f.flush()
                step += 1
                next_t += 1.0 / rate
                time.sleep(max(0.0, next_t - time.perf_counter()))
            written.append(step)

    async def main() -> dict:
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(160, 48), message_hook=hook) as pilot:
            app.open_run(run.id)
            await pilot.pause(0.3)
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            written: list = []
            stop_at = time.perf_counter() + seconds
            thread = threading.Thread(target=writer, args=(stop_at, written))
            thread.start()
            while thread.is_alive():
                await pilot.pause(0.1)
            thread.join()
            steps = written[0]
            t_stop = time.perf_counter()
            while screen.view.step is None or screen.view.step < steps - 1:
                await pilot.pause(0.01)
                if time.perf_counter() - t_stop > 30:
                    break
            caught_up = time.perf_counter() - t_stop
            return {"rate_per_s": rate, "seconds": seconds, "events": steps, "ui_updates": stats["handled"],
                    "events_per_update": steps / max(1, stats["handled"]), "catch_up_ms": 1000 * caught_up,
                    "view_step": screen.view.step}

    return asyncio.run(main())


def bench_replay(events: int = 1_000_000) -> dict:
    """Open a dashboard on a finished run with ``events`` step events: time to the last step shown."""
    import asyncio

    from tui_trainer.app.console import GptConsole
    from tui_trainer.app.messages import RunUpdated
    from tui_trainer.app.screens.dashboard import DashboardScreen
    from tui_trainer.runs import RunStore

    tmp = tempfile.mkdtemp()
    store = RunStore(Path(tmp) / "runs")
    run = store.create("replay")
    t0 = time.time() - events
    with open(run.dir / "events.jsonl", "w") as f:
        f.write(json.dumps({"v": 1, "seq": 0, "t": t0, "type": "run_start", "config": {}, "trainer": "train",
                            "params": 1, "world_size": 1, "device": "cpu", "device_name": "cpu",
                            "dtype": "float32", "grad_accum_steps": 1, "max_steps": events, "start_step": 0,
                            "resumed_from_step": None, "peak_flops": None}) + "\n")
        for step in range(events):
            f.write(json.dumps({"v": 1, "seq": step + 1, "t": t0 + step, "type": "step", "step": step,
                                "loss": 3 + math.exp(-step / 1e5), "lr": 6e-4, "grad_norm": 1.0, "dt": 1.0,
                                "tok_per_s": 5e5, "tokens": (step + 1) * 524288, "mfu": 0.4}) + "\n")
        f.write(json.dumps({"v": 1, "seq": events + 1, "t": t0 + events, "type": "run_end",
                            "status": "finished", "reason": "max_steps", "step": events - 1}) + "\n")
    size_mb = (run.dir / "events.jsonl").stat().st_size / 1e6
    stats = {"handled": 0, "max_gap": 0.0, "last": None}

    def hook(message) -> None:
        if isinstance(message, RunUpdated):
            now = time.perf_counter()
            if stats["last"] is not None:
                stats["max_gap"] = max(stats["max_gap"], now - stats["last"])
            stats["last"] = now
            stats["handled"] += 1

    async def main() -> dict:
        app = GptConsole(runs_root=str(store.root))
        async with app.run_test(size=(160, 48), message_hook=hook) as pilot:
            await pilot.pause(0.2)
            t = time.perf_counter()
            app.open_run(run.id)
            await pilot.pause(0)
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            while screen.view.end_status is None:
                await pilot.pause(0.02)
            replay = time.perf_counter() - t
            return {"events": events, "log_mb": round(size_mb, 1), "replay_s": replay,
                    "events_per_s": events / replay, "ui_updates": stats["handled"],
                    "longest_gap_between_ui_updates_ms": 1000 * stats["max_gap"]}

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("cold", "chart", "dashboard", "burst", "replay"))
    parser.add_argument("--config", help="cold start with this config open in the editor")
    args = parser.parse_args(argv)
    # Other work on the machine skews every figure: say how busy it was.
    print("load average (1/5/15 min) at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()),
          f"on {os.cpu_count()} CPUs")
    if args.only in (None, "cold"):
        print("cold start (baseline: minimal Textual + plotext app):",
              json.dumps(bench_cold_start(child="_baseline_child"), indent=1))
        print("cold start (empty runs root):", json.dumps(bench_cold_start(), indent=1))
        editor_config = args.config or str(REPO / "configs" / "shakespeare.toml")
        print(f"cold start (editor on {Path(editor_config).name}):",
              json.dumps(bench_cold_start(config=editor_config), indent=1))
    if args.only in (None, "chart"):
        print("chart frame:", json.dumps(bench_chart(), indent=1))
        print("same layers through textual-plotext's Plot:", json.dumps(bench_textual_plotext(), indent=1))
    if args.only in (None, "chart", "dashboard"):
        print("dashboard frame (all charts):", json.dumps(bench_dashboard_frame(), indent=1))
    if args.only in (None, "burst"):
        print("event burst:", json.dumps(bench_burst(), indent=1))
    if args.only in (None, "replay"):
        print("replay:", json.dumps(bench_replay(), indent=1))


if __name__ == "__main__":
    main()
