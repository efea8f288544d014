"""Readers survive any log: an event that breaks the schema (types, ranges, sizes) is skipped and counted like
a torn line, and nothing after it is lost. Each case here once reached the console or the CLI and broke it."""

from __future__ import annotations

import json

import pytest

from tui_trainer.channel.follower import EventFollower
from tui_trainer.channel.schema import EVENT_FIELDS, event_problem, validate_event
from tui_trainer.channel.summary import RunSummary

from event_samples import PAYLOADS, event, line

BAD_FIELDS = [
    ("step", "t", "now"),                       # killed the console (time.localtime("now"))
    ("step", "t", float("nan")),
    ("step", "t", 1e300),                       # time.localtime overflows
    ("step", "step", -4),                       # "step -4/60 -7%"
    ("step", "step", 10**29 + 1),               # beyond a 64-bit int
    ("step", "step", True),                     # bool is not an int
    ("step", "step", 3.0),
    ("step", "loss", "1.0"),
    ("step", "loss", True),
    ("step", "loss", -1.0),
    ("step", "lr", float("nan")),
    ("step", "lr", float("inf")),
    ("step", "loss", 1e308),                    # finite, but the loss chart's axis maths overflowed on it
    ("step", "tok_per_s", 1e300),
    ("step", "dt", -0.5),
    ("step", "tokens", None),
    ("step", "mfu", "high"),
    ("val", "loss", None),
    ("hellaswag", "acc", 1.5),
    ("hellaswag", "correct", 11),               # more correct than scored
    ("sample", "texts", [None, 1]),             # shown as "None1"
    ("sample", "texts", "one string"),
    ("sample", "prompt", None),
    ("sample", "prompt", "\ud800"),             # a lone surrogate cannot be printed
    ("sample", "texts", ["x" * ((1 << 20) + 1)]),
    ("control_ack", "ok", 1),
    ("run_start", "config", {"model": [[[[1]]]]}),
    ("run_start", "config", "not a dict"),
    ("run_start", "world_size", 0),
    ("run_end", "status", "exploded"),
    ("run_end", "step", -1),
    ("system", "ranks", []),                    # no rank's figures
    ("system", "ranks", [{"rank": 0}]),         # a rank without its figures
    ("system", "ranks", "rank 0: 10% CPU"),
    ("system", "interval_s", -1.0),
    ("log", "message", {"nested": "object"}),
]


@pytest.mark.parametrize("kind,name,value", BAD_FIELDS, ids=[f"{k}.{n}={v!r:.20}" for k, n, v in BAD_FIELDS])
def test_invalid_field_is_refused_by_the_schema(kind, name, value):
    bad = event(1, kind, **{name: value})
    assert validate_event(bad) and event_problem(bad)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_every_sample_event_is_valid(kind):
    assert validate_event(event(0, kind)) == [] and event_problem(event(0, kind)) is None


def test_every_schema_type_has_a_sample():
    assert set(PAYLOADS) <= set(EVENT_FIELDS)


def test_missing_envelope_or_field_is_refused():
    for name in ("v", "seq", "t", "type", "loss"):
        bad = event(0)
        del bad[name]
        assert validate_event(bad) and event_problem(bad)
    assert event_problem(event(0, v=2))


@pytest.mark.parametrize("kind,name,value", BAD_FIELDS, ids=[f"{k}.{n}={v!r:.20}" for k, n, v in BAD_FIELDS])
def test_follower_skips_and_counts_an_invalid_event(tmp_path, kind, name, value):
    path = tmp_path / "events.jsonl"
    bad = json.dumps(event(1, kind, **{name: value})).encode() + b"\n"
    path.write_bytes(line(0, "run_start") + bad + line(2, step=5))
    f = EventFollower(path)
    assert [e["seq"] for e in f.poll()] == [0, 2]
    assert f.skipped == 1


def test_deeply_nested_line_is_skipped_not_a_recursion_error(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(0, "run_start") + b"[" * 200_000 + b"\n" + b'{"a":' * 100_000 + b"\n" + line(1))
    f = EventFollower(path)
    assert [e["seq"] for e in f.poll()] == [0, 1]
    assert f.skipped == 2


def test_moderately_nested_extra_field_is_refused(tmp_path):
    """Nesting just under the decoder's limit decodes, but re-encoding it (export, status.json) would not."""
    path = tmp_path / "events.jsonl"
    deep = '{"v":1,"seq":1,"t":1.0,"type":"heartbeat","step":1,"extra":' + "[" * 900 + "]" * 900 + "}\n"
    path.write_bytes(line(0, "run_start") + deep.encode() + line(2))
    f = EventFollower(path)
    assert [e["seq"] for e in f.poll()] == [0, 2] and f.skipped == 1


def test_unknown_type_is_ignored_and_counted_apart_from_garbage(tmp_path):
    path = tmp_path / "events.jsonl"
    future = {"v": 1, "seq": 1, "t": 1.0, "type": "from_the_future", "x": 1}
    path.write_bytes(line(0, "run_start") + json.dumps(future).encode() + b"\n" + line(2))
    f = EventFollower(path)
    assert [e["seq"] for e in f.poll()] == [0, 2]
    assert f.ignored == 1 and f.skipped == 0


def test_one_negative_step_does_not_rewind_the_summary(tmp_path):
    path = tmp_path / "events.jsonl"
    good = b"".join(line(i + 1, step=i) for i in range(60))
    path.write_bytes(line(0, "run_start") + good + json.dumps(event(61, step=-5)).encode() + b"\n")
    summary = RunSummary.from_events(EventFollower(path))
    assert summary.step == 59 and summary.progress == 1.0
