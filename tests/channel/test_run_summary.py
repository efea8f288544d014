"""RunSummary folding: lifecycle, best val, resumes, errors, ETA."""

from __future__ import annotations

from tui_trainer.channel.summary import MAX_ERRORS_KEPT, RunSummary


def ev(kind, t, **payload):
    return {"v": 1, "seq": 0, "t": t, "type": kind, **payload}


def start(t, resumed=None, max_steps=10):
    return ev("run_start", t, config={}, trainer="train", params=123, world_size=2, device="cpu",
              device_name="Xeon", dtype="bfloat16", grad_accum_steps=1, max_steps=max_steps, start_step=0,
              resumed_from_step=resumed, peak_flops=None)


def step(t, n, loss):
    return ev("step", t, step=n, loss=loss, lr=1e-3, grad_norm=1.0, dt=0.5, tok_per_s=1000.0, tokens=(n + 1) * 64,
              mfu=None)


def test_fold_a_finished_run():
    s = RunSummary.from_events([
        start(100.0), step(101.0, 0, 5.0), ev("val", 101.5, step=1, loss=4.8), step(102.0, 1, 4.5),
        ev("val", 102.5, step=2, loss=4.9), ev("hellaswag", 102.6, step=2, correct=1, correct_norm=2, total=8,
                                             acc=0.125, acc_norm=0.25),
        ev("sample", 102.7, step=2, prompt="Hi", texts=["there"], source="final"),
        ev("checkpoint", 102.8, step=2, path="/x", reason="final"),
        ev("run_end", 103.0, status="finished", reason="max_steps", step=2)])
    assert s.status == "finished" and s.ended and s.end_step == 2
    assert s.step == 1 and s.loss == 4.5 and s.max_steps == 10 and s.world_size == 2
    assert s.best_val == 4.8 and s.best_val_step == 1 and s.val_loss == 4.9
    assert s.hellaswag_acc_norm == 0.25 and s.hellaswag_step == 2
    assert s.last_sample["texts"] == ["there"] and s.last_checkpoint["step"] == 2
    assert s.started_at == 100.0 and s.last_event_at == 103.0 and s.events == 9
    assert s.eta_seconds() is None          # ended
    assert s.as_dict()["status"] == "finished"


def test_resume_reopens_the_run_and_counts():
    s = RunSummary.from_events([start(0.0), step(1.0, 0, 5.0),
                                ev("run_end", 2.0, status="stopped", reason="user", step=1),
                                start(10.0, resumed=1), step(11.0, 1, 4.0)])
    assert s.status is None and not s.ended
    assert s.resumes == 1 and s.resumed_from_step == 1 and s.started_at == 0.0 and s.segment_started_at == 10.0


def test_eta_from_the_pace_of_this_segment():
    s = RunSummary.from_events([start(0.0, max_steps=100), step(10.0, 0, 5.0), step(12.0, 1, 4.0),
                                step(14.0, 2, 4.0)])
    # 2 s per step since the first step, 97 steps to go
    assert s.eta_seconds() == 194.0
    assert s.eta_seconds(now=15.0) == 193.0
    assert abs(s.progress - 0.03) < 1e-9


def test_errors_are_capped_and_nan_never_best():
    events = [start(0.0)] + [ev("error", float(i), message=f"boom {i}", traceback="") for i in range(50)]
    events += [ev("val", 60.0, step=1, loss=float("nan")), ev("val", 61.0, step=2, loss=3.0)]
    s = RunSummary.from_events(events)
    assert s.error_count == 50 and len(s.errors) == MAX_ERRORS_KEPT and s.last_error == "boom 49"
    assert s.best_val == 3.0


def test_tolerates_unknown_and_malformed_events():
    s = RunSummary.from_events([{"type": "future_thing", "t": 1.0}, {"type": "step", "step": "x"},
                                {"type": "val", "step": 1, "loss": "bad"}, {"type": "run_end"}])
    assert s.step is None and s.best_val is None and s.events == 4
