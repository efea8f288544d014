"""Following a run: the trainer-log tail, the event feed into a RunView, a replaced log, collapsing messages."""

from __future__ import annotations

import json
import threading
import time

from console_events import EventLog

from tui_trainer.app.feed import OUTPUT_BACKLOG_BYTES, RunFeed, TextTail
from tui_trainer.app.messages import RunsRefreshed, RunUpdated
from tui_trainer.app.run_view import RunView
from tui_trainer.app.runs_model import RunsModel
from tui_trainer.runs import RunStore


def test_text_tail_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / "trainer.log"
    tail = TextTail(path)
    assert tail.poll() == []                      # no file yet
    path.write_bytes(b"one\ntw")
    assert tail.poll() == ["one"]
    with open(path, "ab") as f:
        f.write(b"o\r\nthree\n")
    assert tail.poll() == ["two", "three"] and tail.total == 3
    path.write_bytes(b"new\n")                    # truncated/replaced
    assert tail.poll() == ["new"]


def test_text_tail_starts_near_the_end_of_a_long_log(tmp_path):
    path = tmp_path / "trainer.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)))
    lines = TextTail(path).poll()
    assert lines[-1] == "line 99999" and len("\n".join(lines)) <= OUTPUT_BACKLOG_BYTES
    assert lines[0].startswith("line ")           # the cut first line was skipped, not shown half


def test_feed_folds_events_and_output_and_sees_a_replaced_log(tmp_path):
    run = RunStore(tmp_path / "runs").create("feed")
    log = EventLog()
    log.start(max_steps=10)
    for n in range(3):
        log.step(n, 4.0 - n)
    log.write(run.events_file)
    run.log_file.write_text("hello from rank 0\n")
    view = RunView(run_id=run.id)
    feed = RunFeed(run, view, notify=lambda: None)
    assert feed.poll_once()
    assert view.step == 2 and list(feed.output.lines) == ["hello from rank 0"]
    assert not feed.poll_once()                   # nothing new
    assert feed.refresh_status() and feed.status is not None
    # Someone replaced the event log with a shorter one: the view is rebuilt from the new content.
    fresh = EventLog()
    fresh.start(max_steps=5)
    fresh.step(0, 9.0)
    run.events_file.write_text("")
    fresh.write(run.events_file)
    assert feed.poll_once()
    assert view.step == 0 and view.series["train_loss"].values().tolist() == [9.0] and view.max_steps == 5


def test_feed_thread_keeps_up_with_a_fast_writer(tmp_path):
    run = RunStore(tmp_path / "runs").create("burst")
    view = RunView(run_id=run.id)
    notified = []
    feed = RunFeed(run, view, notify=lambda: notified.append(1), interval=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=feed.follow, args=(stop.is_set,))
    thread.start()
    log = EventLog()
    log.start(max_steps=10**6)
    for n in range(20_000):
        log.step(n, 3.0)
    log.write(run.events_file)
    deadline = time.monotonic() + 30
    while view.step != 19_999 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)
    assert view.step == 19_999 and len(view.series["train_loss"]) == 20_000
    # The follower folds in batches: far fewer notifications than events.
    assert 0 < len(notified) < 100


def test_update_messages_collapse_per_run():
    a1, a2, b = RunUpdated("a"), RunUpdated("a"), RunUpdated("b")
    assert a2.can_replace(a1) and not b.can_replace(a1)
    assert RunsRefreshed([]).can_replace(RunsRefreshed([1]))


def test_runs_model_rows_update_incrementally(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create("rows")
    log = EventLog(t0=time.time() - 60)
    log.start(max_steps=10)
    log.step(0, 4.0)
    log.add("val", step=0, loss=3.9)
    log.add("hellaswag", step=0, correct=1, correct_norm=2, total=8, acc=0.125, acc_norm=0.25)
    log.write(run.events_file)
    model = RunsModel(store)
    (row,) = model.refresh()
    assert (row.run_id, row.step, row.loss, row.best_val, row.hellaswag) == (run.id, "1/10", "4.0000", "3.9000",
                                                                              "0.2500")
    with open(run.events_file, "a") as f:
        f.write(json.dumps({"v": 1, "seq": 9, "t": time.time(), "type": "step", "step": 1, "loss": 3.5,
                            "lr": 1e-3, "grad_norm": 1.0, "dt": 1.0, "tok_per_s": 2000.0, "tokens": 512,
                            "mfu": None}) + "\n")
        f.write(json.dumps({"v": 1, "seq": 10, "t": time.time(), "type": "run_end", "status": "finished",
                            "reason": "max_steps", "step": 1}) + "\n")
    (row,) = model.refresh()
    assert row.step == "2/10" and row.loss == "3.5000" and row.tok_per_s == "2.0k"
    assert row.state == "finished" and not row.running
    assert [rid for rid, _ in model.summaries()] == [run.id]
    store.delete(run.id)
    assert model.refresh() == []
