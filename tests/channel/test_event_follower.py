"""EventFollower on hand-written logs: incremental reads, torn lines, garbage, offsets, restarts."""

from __future__ import annotations

import json
import os

from tui_trainer.channel.follower import EventFollower

from event_samples import line


def append(path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_missing_file_is_empty_not_an_error(tmp_path):
    f = EventFollower(tmp_path / "events.jsonl")
    assert f.poll() == []
    assert f.offset == 0 and f.silent_for() is None


def test_reads_only_new_events(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, line(0, "run_start") + line(1, step=0))
    f = EventFollower(path)
    assert [e["seq"] for e in f.poll()] == [0, 1]
    assert f.poll() == []
    append(path, line(2, step=1))
    assert [e["seq"] for e in f.poll()] == [2]
    assert f.offset == path.stat().st_size
    assert f.last_event_time == 1002.0 and f.seq_gaps == 0


def test_torn_last_line_is_held_back_then_completed(tmp_path):
    path = tmp_path / "events.jsonl"
    full = line(1, step=0)
    append(path, line(0, "run_start") + full[:17])
    f = EventFollower(path)
    assert [e["seq"] for e in f.poll()] == [0]
    assert f.skipped == 0 and f.pending_bytes == 17
    assert f.poll() == []                       # still torn: nothing, no error, nothing skipped
    append(path, full[17:])
    assert [e["seq"] for e in f.poll()] == [1]
    assert f.skipped == 0 and f.pending_bytes == 0


def test_garbage_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, line(0, "run_start") + b"not json at all\n" + b"\n" + b"[1, 2]\n" + b'{"no_type": 1}\n'
           + b"\xff\xfe\x00 binary\n" + b'{"type": 5}\n' + line(1, step=0))
    f = EventFollower(path)
    assert [e["seq"] for e in f.poll()] == [0, 1]
    assert f.skipped == 5                       # blank lines are not garbage


def test_max_events_batches_and_offset_resume(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, b"".join(line(i) for i in range(25)))
    f = EventFollower(path)
    seen = []
    while batch := f.poll(max_events=10):
        assert len(batch) <= 10
        seen += [e["seq"] for e in batch]
    assert seen == list(range(25))
    # A follower created at a saved offset continues from there, never re-reading old bytes.
    g = EventFollower(path, offset=len(b"".join(line(i) for i in range(20))))
    assert [e["seq"] for e in g.poll()] == [20, 21, 22, 23, 24]
    # ...and a new instance at offset 0 replays everything.
    assert len(EventFollower(path).poll()) == 25


def test_max_events_stops_inside_a_chunk_without_losing_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, b"".join(line(i) for i in range(100)))
    f = EventFollower(path, chunk_size=64)      # chunks smaller than a line
    seen = []
    while batch := f.poll(max_events=7):
        seen += [e["seq"] for e in batch]
    assert seen == list(range(100))
    assert f.offset == path.stat().st_size


def test_end_detection_and_resume_clears_it(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, line(0, "run_start") + line(1, "run_end", status="stopped", reason="user", step=3))
    f = EventFollower(path)
    f.poll()
    assert f.ended and f.end_event["status"] == "stopped"
    append(path, line(2, "run_start", resumed_from_step=3))
    f.poll()
    assert not f.ended and f.end_event is None


def test_seq_gap_counted(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, line(0) + line(1) + line(5))
    f = EventFollower(path)
    f.poll()
    assert f.seq_gaps == 1


def test_overlong_line_is_dropped_with_bounded_memory(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, line(0) + b"x" * 5000 + b"\n" + line(1))
    f = EventFollower(path, chunk_size=256, max_line_bytes=1024)
    assert [e["seq"] for e in f.poll()] == [0, 1]
    assert f.skipped == 1


def test_file_replaced_by_shorter_one_restarts(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, b"".join(line(i) for i in range(10)))
    f = EventFollower(path)
    f.poll()
    path.write_bytes(line(0, "run_start"))
    assert [e["type"] for e in f.poll()] == ["run_start"]
    assert f.restarts == 1


def test_follow_generator_ends_after_run_end(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, line(0, "run_start") + line(1) + line(2, "run_end", status="finished", reason="done", step=1))
    batches = list(EventFollower(path).follow(interval=0.01))
    assert [e["seq"] for b in batches for e in b] == [0, 1, 2]


def test_silent_for_uses_event_time(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, line(0))
    f = EventFollower(path)
    f.poll()
    assert f.silent_for(now=f.last_growth + 5) == 5.0


def test_unicode_payload_round_trips(tmp_path):
    path = tmp_path / "events.jsonl"
    event = {"v": 1, "seq": 0, "t": 1.0, "type": "sample", "step": 1, "prompt": "Grüße, 世界",
             "texts": ["naïve ☃"], "source": "control"}
    append(path, (json.dumps(event, ensure_ascii=False) + "\n").encode())
    assert EventFollower(path).poll() == [event]
    assert os.path.getsize(path) > 0
