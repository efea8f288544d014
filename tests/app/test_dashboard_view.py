"""RunView: what the dashboard shows, folded from events — resumes stitched, errors kept, bad events survived."""

from __future__ import annotations

import math

from console_events import EventLog

from tui_trainer.app.chart_catalog import memory_empty_message
from tui_trainer.app.run_view import RunView
from tui_trainer.app.runs_model import environment_hint
from tui_trainer.app.format import ack_sentence
from tui_trainer.app.sample_browser import FOLLOWING, HELD, REQUESTED, SampleBrowser
from tui_trainer.app.widgets.run_panels import banner_text, hellaswag_skipped_message, sample_renderable


def fold(log: EventLog) -> RunView:
    view = RunView(run_id="r")
    assert view.apply_many(log.events) == len(log.events)
    return view


def test_a_finished_run_fills_every_panel():
    log = EventLog()
    log.start(max_steps=4)
    for n in range(4):
        log.step(n, 5.0 - n)
    log.add("val", step=3, loss=2.5)
    log.add("hellaswag", step=3, correct=2, correct_norm=3, total=8, acc=0.25, acc_norm=0.375)
    log.add("sample", step=3, prompt="Hello", texts=[" world", " there"], source="final")
    log.add("checkpoint", step=3, path="/x/step-00000003", reason="final")
    log.add("run_end", status="finished", reason="max_steps", step=3)
    view = fold(log)
    assert view.step == 3 and view.loss == 2.0 and view.max_steps == 4 and view.world_size == 2
    assert view.series["train_loss"].values().tolist() == [5.0, 4.0, 3.0, 2.0]
    assert view.series["val_loss"].values().tolist() == [2.5]
    assert view.series["val_loss"].x("tokens").tolist() == [4 * 256]  # val placed at its step's token count
    assert view.best_val == 2.5 and view.progress() == 1.0
    assert [p.acc_norm for p in view.hellaswag_points] == [0.375]
    assert view.samples.by_prompt["Hello"][0].texts == [" world", " there"]
    assert view.end_status == "finished" and view.eta() is None
    assert any("checkpoint at step 3" in line.message for line in view.logs)


def test_resume_stitches_series_samples_and_wall_clock():
    log = EventLog(t0=0.0)
    log.start(max_steps=20)
    for n in range(8):                       # steps 0..7, one second apart
        log.step(n, 10.0 - n)
        if n in (3, 6):
            log.add("sample", after=0.0, step=n, prompt="Hello", texts=[f"t{n}"], source="schedule")
    # Died after step 7; a checkpoint existed at step 4. Two hours later it resumes at step 5.
    log.start(start_step=5, resumed=4, max_steps=20, after=7200.0)
    for n in range(5, 8):
        log.step(n, 1.0)
    log.add("sample", after=0.0, step=6, prompt="Hello", texts=["again"], source="schedule")
    view = fold(log)
    loss = view.series["train_loss"]
    assert loss.x("step").tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert loss.values().tolist()[-3:] == [1.0, 1.0, 1.0]
    walls = loss.x("wall")
    assert all(b > a for a, b in zip(walls, walls[1:]))
    assert walls[-1] < 20  # the two hours of downtime are not training time
    assert view.resume_steps() == [5]
    rounds = view.samples.by_prompt["Hello"]
    assert [(r.step, r.texts) for r in rounds] == [(3, ["t3"]), (6, ["again"])]
    assert any("resumed from checkpoint at step 4" in line.message for line in view.logs)


def test_errors_acks_and_logs_are_kept_and_counted():
    log = EventLog()
    log.start()
    log.add("log", level="warning", message="low disk")
    log.add("control_ack", id="abc", action="sample", step=3, ok=True, message="")
    log.add("error", message="RuntimeError: boom\nsecond line", traceback="Traceback ...")
    log.add("run_end", status="failed", reason="RuntimeError: boom", step=3)
    view = fold(log)
    assert view.errors[0].message.startswith("RuntimeError: boom")
    assert view.acks["abc"]["ok"] is True
    assert view.end_status == "failed" and view.end_reason == "RuntimeError: boom"
    assert view.logs_total == len(view.logs) == 4
    assert [line.level for line in view.logs] == ["warning", "info", "error", "error"]


def test_a_malformed_event_is_skipped_with_a_note_not_an_exception():
    view = RunView(run_id="r")
    view.apply_many([{"type": "step", "t": 1.0, "step": "not a number"}, {"type": "val", "t": 2.0},
                     {"type": "future_event", "t": 3.0}])
    assert view.step is None and view.events_seen == 3
    assert sum("unreadable" in line.message for line in view.logs) == 2


def test_nan_loss_is_kept_as_a_gap_and_never_becomes_the_best_val():
    log = EventLog()
    log.start()
    log.step(0, math.nan)
    log.add("val", step=0, loss=math.nan)
    log.add("val", step=1, loss=3.0)
    view = fold(log)
    assert view.series["train_loss"].nonfinite == 1
    assert view.best_val == 3.0


def test_eta_uses_recent_wall_time_per_step():
    log = EventLog(t0=0.0)
    log.start(max_steps=100)
    for n in range(10):
        log.step(n, 3.0, dt=2.0)             # one step every 2 s
    view = fold(log)
    assert abs(view.seconds_per_step() - 2.0) < 1e-9
    assert abs(view.eta() - 90 * 2.0) < 1e-6  # 90 steps left


def test_reset_clears_in_place_so_charts_keep_their_series():
    log = EventLog()
    log.start()
    log.step(0, 3.0)
    view = fold(log)
    series = view.series["train_loss"]
    view.reset()
    assert view.series["train_loss"] is series and len(series) == 0 and view.step is None


def test_sample_browser_follows_scrubs_and_pins():
    log = EventLog()
    log.start()
    for n in (10, 20, 30):
        log.add("sample", step=n, prompt="A", texts=[f"a{n}"], source="schedule")
    log.add("sample", step=30, prompt="B", texts=["b30"], source="control")
    view = fold(log)
    browser = SampleBrowser()
    current = browser.current(view.samples)
    assert current.prompt == "B" and current.following          # follows the latest prompt
    browser.next_prompt(view.samples)
    assert browser.current(view.samples).prompt == "A"
    browser.scrub(view.samples, -1)
    assert browser.current(view.samples).round.step == 20
    browser.scrub(view.samples, -5)
    assert browser.current(view.samples).round.step == 10       # clamped at the first round
    view.apply_many([{"v": 1, "seq": 9, "t": 9e3, "type": "sample", "step": 40, "prompt": "A",
                      "texts": ["a40"], "source": "schedule"}])
    assert browser.current(view.samples).round.step == 10       # scrubbed back: pinned
    browser.scrub(view.samples, +10)
    assert browser.current(view.samples).round.step == 40       # scrubbing to the end follows again
    browser.first(view.samples)
    assert browser.current(view.samples).index == 0
    browser.follow()
    assert browser.current(view.samples).following
    assert SampleBrowser().current(RunView().samples) is None


def sample_event(seq: int, step: int, prompt: str, source: str) -> dict:
    return {"v": 1, "seq": seq, "t": 9e3 + seq, "type": "sample", "step": step, "prompt": prompt,
            "texts": [f"{prompt}@{step}/{source}"], "source": source}


def test_scheduled_sample_arriving_right_after_a_control_sample_does_not_replace_it():
    """The trainer answers ``p`` at a step boundary; when that step is also a sample.every step, the scheduled
    sample follows in the same batch. The requested one stays shown until the user moves."""
    log = EventLog()
    log.start()
    log.add("sample", step=5, prompt="Hello", texts=["h5"], source="schedule")
    view = fold(log)
    browser = SampleBrowser()
    browser.request(view.samples, "Once upon a time")
    waiting = browser.current(view.samples)
    assert waiting.prompt == "Hello" and waiting.waiting_for == "Once upon a time"
    view.apply_many([sample_event(10, 10, "Once upon a time", "control"),
                     sample_event(11, 10, "Hello", "schedule")])
    shown = browser.current(view.samples)
    assert shown.prompt == "Once upon a time" and shown.mode == REQUESTED and shown.waiting_for is None
    assert shown.round.source == "control" and (shown.prompt_index, shown.prompt_count) == (1, 2)
    view.apply_many([sample_event(12, 15, "Hello", "schedule"), sample_event(13, 20, "Once upon a time",
                                                                               "schedule")])
    assert browser.current(view.samples).round.step == 10         # later rounds do not move it either
    browser.scrub(view.samples, 1)                          # the user moves: held, no longer "requested"
    moved = browser.current(view.samples)
    assert moved.round.step == 20 and moved.mode == HELD
    browser.follow()
    assert browser.current(view.samples).mode == FOLLOWING


def test_a_requested_sample_with_the_scheduled_prompt_keeps_both_rounds_of_that_step():
    log = EventLog()
    log.start()
    view = fold(log)
    browser = SampleBrowser()
    browser.request(view.samples, "Hello")
    view.apply_many([sample_event(10, 10, "Hello", "control"), sample_event(11, 10, "Hello", "schedule")])
    assert [r.source for r in view.samples.by_prompt["Hello"]] == ["control", "schedule"]
    shown = browser.current(view.samples)
    assert shown.round.source == "control" and shown.mode == REQUESTED and shown.count == 2


def test_prompt_numbers_do_not_change_when_another_prompt_is_sampled():
    log = EventLog()
    log.start()
    log.add("sample", step=5, prompt="A", texts=["a"], source="schedule")
    log.add("sample", step=5, prompt="B", texts=["b"], source="control")
    view = fold(log)
    browser = SampleBrowser()
    browser.next_prompt(view.samples)                     # B (following) -> A
    assert (browser.current(view.samples).prompt, browser.current(view.samples).prompt_index) == ("A", 0)
    view.apply_many([sample_event(10, 10, "A", "schedule")])   # A is now the most recently sampled
    browser.next_prompt(view.samples)
    assert (browser.current(view.samples).prompt, browser.current(view.samples).prompt_index) == ("B", 1)


def test_a_refused_request_stops_waiting():
    view = RunView()
    browser = SampleBrowser()
    browser.request(view.samples, "X")
    browser.cancel_request()
    view.apply_many([sample_event(1, 1, "X", "control")])  # a sample of another console's request
    assert browser.current(view.samples).mode == FOLLOWING


def test_control_acknowledgements_read_as_sentences():
    assert ack_sentence({"action": "checkpoint", "step": 242, "ok": True, "message": "done"}) == \
        "Checkpoint written at step 242"
    assert ack_sentence({"action": "sample", "step": 7, "ok": True, "message": "done"}) == \
        "Sample taken at step 7"
    assert ack_sentence({"action": "eval", "step": 3, "ok": False, "message": "unknown action"}) == \
        "Eval refused at step 3: unknown action"


def banner(view: RunView, status=None, resume_from=None) -> str:
    text = banner_text(view, status, None, resume_from)
    return "" if text is None else text.plain


def test_failure_banner_says_the_reason_once_whole_and_what_to_do():
    message = ("invalid config /runs/x/config.toml:\n"
               "  config: TOML syntax error at line 3 — fix the line it names\n\n"
               "Traceback-like detail that is not the message")
    log = EventLog()
    log.start()
    log.add("error", message=message, traceback="")
    log.add("run_end", status="failed", reason=message.splitlines()[0][:20], step=0)
    view = fold(log)
    text = banner(view)
    assert text.count("TOML syntax error at line 3") == 1 and "Traceback-like" not in text
    assert "invalid config /runs/x/config.toml: config: TOML syntax error" in text
    assert "press n to edit its config as a new run" in text and "press r" not in text
    assert "press r to resume from the checkpoint at step 1,200" in banner(view, resume_from=1200)


def test_an_environment_fix_says_the_console_must_be_restarted():
    log = EventLog()
    log.start()
    log.add("error", message="No tokenizer offline. Set TIKTOKEN_CACHE_DIR to a directory holding it.",
            traceback="")
    log.add("run_end", status="failed", reason="No tokenizer offline.", step=0)
    text = banner(fold(log))
    assert "Runs get TIKTOKEN_CACHE_DIR from the console that launches them: quit it" in text
    assert environment_hint("CUDA out of memory") == ""


def test_hellaswag_skipped_is_kept_with_its_reason_until_a_new_segment():
    log = EventLog()
    log.start()
    log.add("log", level="warning", message="HellaSwag skipped for this run: no file at data/hs.jsonl")
    view = fold(log)
    assert view.hellaswag_skipped == "no file at data/hs.jsonl"
    message = hellaswag_skipped_message(view.hellaswag_skipped)
    assert "no file at data/hs.jsonl" in message and "eval.hellaswag_path" in message
    view.apply_many([log.start(start_step=5, resumed=4)])
    assert view.hellaswag_skipped == ""


def test_an_empty_samples_panel_says_when_samples_come_and_how_to_ask():
    text = sample_renderable(None, 250).plain
    assert "every 250 steps (sample.every)" in text and "press p" in text


def test_a_stop_by_signal_reads_as_a_stop_request_in_the_events_pane():
    log = EventLog()
    log.start()
    log.add("run_end", status="stopped", reason="signal SIGTERM", step=3)
    line = fold(log).logs[-1].message
    assert line.startswith("run stopped: stop requested") and "SIGTERM" in line


def test_the_memory_chart_of_a_onefile_run_says_none_will_come():
    modular, twin = EventLog(), EventLog()
    modular.start()
    twin.start()["trainer"] = "onefile"
    assert "yet" in memory_empty_message(fold(modular).trainer)  # the modular trainer sends them periodically
    text = memory_empty_message(fold(twin).trainer)
    assert "one-file trainer reports no system figures" in text and "yet" not in text
