"""Readers survive any log: random mutations of a real event log (recorded from a tiny 2-rank run) go through
everything that reads one — the follower, RunSummary, the CLI verbs (runs, status, attach, export) and the
dashboard's view model and renderers. Nothing may raise, every event a reader gets is schema-valid, and a log
read in small chunks gives the same events as one read whole.

Seeded, so a failure reproduces: GPT_CONSOLE_FUZZ_SEED / GPT_CONSOLE_FUZZ_CASES pick another run of it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
import traceback
from pathlib import Path

import pytest

from tui_trainer.app.chart_catalog import run_specs
from tui_trainer.app.chart_render import ChartOptions, render_chart
from tui_trainer.app.run_view import RunView
from tui_trainer.app.widgets.run_panels import alert_text, banner_text, event_line, header_renderable
from tui_trainer.channel.follower import EventFollower
from tui_trainer.channel.schema import validate_event
from tui_trainer.channel.summary import RunSummary
from tui_trainer.cli import main
from tui_trainer.runs import RunStore
from tui_trainer.runs.files import write_json, write_private
from tui_trainer.runs.progress import progress_line
from tui_trainer.runs.status import RunStatus

REAL_LOG = Path(__file__).parent / "channel" / "data" / "real_run_events.jsonl"
SEED = int(os.environ.get("GPT_CONSOLE_FUZZ_SEED", "1212"))
CASES = int(os.environ.get("GPT_CONSOLE_FUZZ_CASES", "3000"))
CLI_EVERY = 25      # the CLI verbs and chart rendering are slower: every Nth case
# Wall clock: on a busy machine fewer cases run (always the same first ones), never for longer.
BUDGET_S = float(os.environ.get("GPT_CONSOLE_FUZZ_BUDGET_S", "45"))
MIN_CASES = 500

HOSTILE = [
    "now", "", "x" * 3000, "\ud800", "\x1b[2J\x1b[31mred", "[bold]markup[/]", "[/]", "\n\r\t", "None", "NaN",
    -1, -5, 0, 1, 7, 2**63, -(2**63), 10**29 + 1, 2**64, True, False, None, 0.0, -0.0, 1e29, -1e308, 1e308,
    float("nan"), float("inf"), float("-inf"), 3.5, [], [1, "a"], [None], ["ok", 2], {}, {"a": {"b": 1}},
    [[[[[[[[[[1]]]]]]]]]], {"model": {"n_layer": [1, [2]]}}, "finished", "failed", "step",
]
TYPES = ["run_start", "step", "val", "hellaswag", "sample", "checkpoint", "heartbeat", "control_ack", "log",
         "error", "run_end", "alert", "system", "from_the_future", 5, None]


def mutate_event(rng: random.Random, event: dict) -> dict:
    event = dict(event)
    keys = list(event)
    roll = rng.random()
    if roll < 0.55 and keys:
        event[rng.choice(keys)] = rng.choice(HOSTILE)
    elif roll < 0.7 and keys:
        del event[rng.choice(keys)]
    elif roll < 0.8:
        event["type"] = rng.choice(TYPES)
    elif roll < 0.9:
        event[rng.choice(["extra", "t", "seq", "v", "step"])] = rng.choice(HOSTILE)
    else:
        event = {"nested": event} if rng.random() < 0.5 else rng.choice(HOSTILE)  # not an event at all
    return event


def mutate_log(rng: random.Random, lines: list[bytes]) -> bytes:
    lines = list(lines)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(lines))
        roll = rng.random()
        if roll < 0.55:
            try:
                event = json.loads(lines[i])
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict):
                lines[i] = json.dumps(mutate_event(rng, event), ensure_ascii=rng.random() < 0.5).encode(
                    "utf-8", "surrogatepass")
        elif roll < 0.62:
            lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]                  # torn
        elif roll < 0.68:
            lines[i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))  # binary garbage
        elif roll < 0.72:
            lines[i] = b"[" * rng.choice([1000, 5000, 5000, 200_000])               # deeply nested
        elif roll < 0.76:
            lines[i] = b'{"type": "step", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        elif roll < 0.82:
            lines.insert(i, lines[rng.randrange(len(lines))])                       # duplicated
        elif roll < 0.88:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]                                 # reordered
        elif roll < 0.92:
            del lines[i]
            if not lines:
                lines = [b""]
        elif roll < 0.96 and i + 1 < len(lines):
            lines[i:i + 2] = [lines[i] + lines[i + 1]]                              # two lines run together
        else:
            lines.insert(i, b"")
    data = b"\n".join(lines) + (b"\n" if rng.random() < 0.8 else b"")             # maybe a torn last line
    return data


def read_all(path: Path, chunk_size: int) -> tuple[list[dict], EventFollower]:
    """The whole log through small reads and small batches."""
    follower = EventFollower(path, chunk_size=chunk_size)
    events = []
    while batch := follower.poll(max_events=37):
        events.extend(batch)
    return events, follower


def exercise_dashboard(events: list[dict], status: RunStatus, render_charts: bool) -> None:
    view = RunView(run_id="fuzz")
    view.apply_many(events[: len(events) // 2])
    for event in events[len(events) // 2:]:
        view.apply_many([event])
    for width in (40, 100, 160):
        header_renderable(view, status, width, now=time.time())
        header_renderable(view, None, width)
    banner_text(view, status)
    banner_text(view, None, "read error", 3)
    alert_text(view)
    for line in list(view.logs):
        event_line(line)
    view.eta(), view.progress(), view.elapsed(), view.resume_steps()
    specs = run_specs(view)
    if render_charts:
        for spec in specs.values():
            render_chart(spec, ChartOptions(), 80, 16)


def exercise_cli(store: RunStore, run_id: str) -> None:
    for argv in (["runs"], ["status", run_id], ["attach", run_id], ["export", run_id, "--csv"]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([*argv, "--runs-root", str(store.root)])
        assert rc in (0, 1, 3, 4, 5), (argv, rc, err.getvalue())
        assert "Traceback" not in out.getvalue() + err.getvalue(), (argv, err.getvalue())


def test_mutated_real_logs_never_break_a_reader(tmp_path):
    lines = REAL_LOG.read_bytes().splitlines()
    rng = random.Random(SEED)
    store = RunStore(tmp_path / "runs")
    finished = RunStatus("finished", "reached max_steps", 0, 6, 1.0, "supervisor", 1)
    started = time.monotonic()
    skipped_total = 0
    done = 0
    for case in range(CASES):
        if time.monotonic() - started > BUDGET_S:
            break
        done += 1
        data = mutate_log(rng, lines)
        slow = case % CLI_EVERY == 0
        if slow:
            run = store.create(f"fuzz-{case}")
            write_private(run.config_file, "")
            write_json(run.status_file, finished.to_json())
            path = run.events_file
        else:
            path = tmp_path / "events.jsonl"
        path.write_bytes(data)
        try:
            events = list(EventFollower(path))
            # Tiny chunks split every line many times (huge lines in them would only make the test slow).
            chunk = rng.choice([7, 64, 4096]) if len(data) < 20_000 else rng.choice([4096, 65536])
            chunked, follower = read_all(path, chunk_size=chunk)
            assert chunked == events, "chunked reading disagrees with reading whole"
            assert all(validate_event(e) == [] for e in events)
            skipped_total += follower.skipped
            summary = RunSummary.from_events(events)
            json.dumps(summary.as_dict())
            progress_line(summary, time.time())
            summary.eta_seconds(time.time())
            exercise_dashboard(events, finished, render_charts=slow)
            if slow:
                exercise_cli(store, run.id)
        except BaseException as e:
            pytest.fail(f"case {case} (seed {SEED}) broke a reader: {e!r}\n{traceback.format_exc()}\n"
                        f"log:\n{data[:3000]!r}")
    elapsed = time.monotonic() - started
    print(f"{done} mutated logs in {elapsed:.1f} s, {skipped_total} invalid lines skipped")
    assert done >= min(CASES, MIN_CASES), f"only {done} cases in {BUDGET_S:.0f} s"
    assert skipped_total > done // 2        # the mutations did reach the validation


def test_the_dashboard_feed_survives_the_events_that_once_broke_it(tmp_path):
    """A string `t` killed the console (time.localtime("now") in run_panels); one `step: -5` cut the loss
    chart from 60 points to 1; wrong types showed as `step -4/60 -7%`. The console's reader drops them."""
    from tui_trainer.app.feed import RunFeed
    from event_samples import event

    run = RunStore(tmp_path / "runs").create("hostile")
    write_private(run.config_file, "")
    good = [event(0, "run_start")] + [event(i + 1, step=i, loss=10.0 - i / 10) for i in range(60)]
    hostile = [event(61, "log", t="now"), event(62, step=-5), event(63, step=-4, loss=True),
               event(64, "sample", texts=[None, 1]), event(65, step=10**29 + 1)]
    run.events_file.write_text("".join(json.dumps(e) + "\n" for e in good + hostile))
    view = RunView(run_id=run.id)
    feed = RunFeed(run, view, notify=lambda: None)
    while feed.poll_once():
        pass
    assert view.step == 59 and len(view.series["train_loss"]) == 60
    assert feed.follower.skipped == len(hostile)
    for line in list(view.logs):
        event_line(line)
    assert "step 60/60 100%" in header_renderable(view, None, 120).plain
