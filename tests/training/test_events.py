"""The trainer's side of the channel: EventWriter (non-blocking, seq continues) and control files."""

from __future__ import annotations

import json
import os
import threading

import pytest

from tui_trainer.channel.control import ControlInbox, send_control
from tui_trainer.channel.schema import validate_event
from tui_trainer.channel.writer import EventWriter, last_seq


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_events_are_valid_and_seq_continues_across_writers(tmp_path):
    path = tmp_path / "run" / "events.jsonl"
    with EventWriter(path) as w:
        w.emit("log", level="info", message="one")
        w.emit("heartbeat", step=0)
    with EventWriter(path) as w:
        w.emit("val", step=3, loss=2.5)
    events = read_events(path)
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert all(validate_event(e) == [] for e in events)
    assert events[2]["type"] == "val" and events[2]["loss"] == 2.5 and events[2]["v"] == 1


def test_torn_last_line_is_closed_off(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        w.emit("heartbeat", step=1)
    with path.open("a") as f:
        f.write('{"v": 1, "seq": 1, "t": 0, "type": "hea')  # a crash mid-line
    assert last_seq(path) == (0, True)
    with EventWriter(path) as w:
        w.emit("heartbeat", step=2)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["seq"] == 1 and json.loads(lines[2])["step"] == 2


def test_disabled_writer_writes_nothing(tmp_path):
    path = tmp_path / "events.jsonl"
    w = EventWriter(path, enabled=False)
    w.emit("heartbeat", step=0)
    w.close()
    assert not path.exists()


def test_emit_never_blocks_and_reports_drops(tmp_path):
    """The log is a FIFO nobody reads: the writer thread blocks on a full pipe, emit() must not."""
    path = tmp_path / "events.jsonl"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer open the FIFO; we read later
    w = EventWriter(path, max_queue=50)
    payload = "x" * 2000
    for i in range(2000):  # ~4 MB: far more than the 64 KB pipe buffer plus the 50-event queue
        w.emit("log", level="info", message=f"{i} {payload}")
    assert w.dropped > 0

    chunks: list[bytes] = []
    os.set_blocking(reader, True)

    def drain():
        while True:
            chunk = os.read(reader, 1 << 16)
            if not chunk:
                return
            chunks.append(chunk)

    t = threading.Thread(target=drain)
    t.start()
    w.emit("heartbeat", step=99)  # queued once the thread moves again
    w.close()
    t.join(10)
    os.close(reader)
    events = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    drop_notes = [e for e in events if e["type"] == "log" and "dropped" in e["message"]]
    assert drop_notes and sum(int(e["message"].split("dropped ")[1].split()[0]) for e in drop_notes) == w.dropped
    assert len(events) == 2000 + 1 - w.dropped + len(drop_notes)
    assert all(validate_event(e) == [] for e in events)


def test_control_round_trip(tmp_path):
    a = send_control(tmp_path, "checkpoint")
    b = send_control(tmp_path, "sample", prompt="Once upon")
    control = tmp_path / "control"
    assert sorted(p.name for p in control.iterdir()) == [f"{a}.json", f"{b}.json"]  # no temp files left
    (control / "zz-garbage.json").write_text("{not json")
    (control / ".half-written.json").write_text("{")  # a sender's temp file: ignored
    inbox = ControlInbox(tmp_path)
    requests = inbox.poll()
    assert [r["id"] for r in requests] == [a, b, "zz-garbage"]
    assert requests[0]["action"] == "checkpoint" and "error" not in requests[0]
    assert requests[1]["prompt"] == "Once upon"
    assert "unreadable" in requests[2]["error"]
    assert inbox.poll() == []
    assert sorted(p.name for p in (control / "done").iterdir()) == sorted([f"{a}.json", f"{b}.json",
                                                                          "zz-garbage.json"])


def test_control_rejects_unknown_actions(tmp_path):
    with pytest.raises(ValueError, match="unknown control action"):
        send_control(tmp_path, "explode")
    (tmp_path / "control").mkdir(exist_ok=True)
    (tmp_path / "control" / "x.json").write_text(json.dumps({"action": "explode"}))
    [request] = ControlInbox(tmp_path).poll()
    assert "unknown action" in request["error"]
    assert ControlInbox(tmp_path / "missing").poll() == []
