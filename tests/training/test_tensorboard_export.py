"""`gpt-console export RUN --tensorboard DIR`: a real resumed run's events, read back with TensorBoard's own
EventAccumulator, match events.jsonl (the resumed segment's values win for re-run steps)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from tui_trainer.cli import main
from tui_trainer.runs import RunStore

from . import harness as H

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.plugin_event_accumulator import (  # noqa: E402
    EventAccumulator as PluginEventAccumulator)

pytestmark = pytest.mark.slow
SCALARS = {"train/loss": ("step", "loss"), "train/lr": ("step", "lr"),
           "train/grad_norm": ("step", "grad_norm"), "train/tok_per_s": ("step", "tok_per_s"),
           "train/mfu": ("step", "mfu"), "val/loss": ("val", "loss"),
           "hellaswag/acc": ("hellaswag", "acc"), "hellaswag/acc_norm": ("hellaswag", "acc_norm")}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, shared_data):
    """12 steps (checkpoints at 6 and 12), the step-12 checkpoint removed, then resumed from 6 to 16 steps:
    the longer schedule changes the learning rate, so steps 6..11 have new values in the second segment."""
    work = tmp_path_factory.mktemp("tb")
    corpus = H.write_corpus(work)
    config = H.write_config(work, corpus, work / "shards")
    store = RunStore(work / "runs")
    run = store.create("tb")
    common = ("checkpoint.every=6", "eval.every=6", "eval.hellaswag_every=6", "eval.hellaswag_examples=20",
              f"eval.hellaswag_path={shared_data / 'hellaswag_val.jsonl.gz'}", "sample.every=6",
              "log.tensorboard=true")
    r = H.run_trainer(config, run.dir, "schedule.max_steps=12", *common, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    shutil.rmtree(run.dir / "checkpoints" / "step-00000012")
    r = H.run_trainer(config, run.dir, "schedule.max_steps=16", *common, resume=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = work / "tb-out"
    assert main(["export", run.id, "--tensorboard", str(out), "--runs-root", str(store.root)]) == 0
    accumulator = EventAccumulator(str(out), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    live = EventAccumulator(str(run.dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    live.Reload()
    return {"run": run, "store": store, "out": out, "acc": accumulator, "live": live,
            "events": H.read_events(run.dir)}


def _expected(events, kind: str, field: str) -> dict[int, tuple[float, float]]:
    """step -> (t, value), the newest event winning: what the stitched export must hold."""
    found = {}
    for e in events:
        if e["type"] == kind and e.get(field) is not None:
            found[e["step"]] = (e["t"], e[field])
    return found


def test_scalars_read_back_equal_the_event_log_stitched(resumed):
    events, acc = resumed["events"], resumed["acc"]
    assert len([e for e in events if e["type"] == "run_start"]) == 2
    assert set(SCALARS) - {"train/mfu"} <= set(acc.Tags()["scalars"])
    for tag, (kind, field) in SCALARS.items():
        expected = _expected(events, kind, field)
        if not expected:
            assert tag not in acc.Tags()["scalars"]
            continue
        got = acc.Scalars(tag)
        assert [s.step for s in got] == sorted(expected), tag  # one point per step, in step order
        for point in got:
            t, value = expected[point.step]
            assert point.value == pytest.approx(float(np.float32(value)), rel=1e-6), (tag, point.step)
            assert point.wall_time == pytest.approx(t, abs=1e-6)
    losses = {s.step: s.value for s in acc.Scalars("train/loss")}
    assert sorted(losses) == list(range(16))
    second_start = [i for i, e in enumerate(events) if e["type"] == "run_start"][1]
    first_segment = {e["step"]: e["lr"] for e in events[:second_start] if e["type"] == "step"}
    lrs = {s.step: s.value for s in acc.Scalars("train/lr")}
    assert lrs[8] != pytest.approx(first_segment[8])  # the resumed segment's value, not the first one's
    assert sorted(s.step for s in acc.Scalars("val/loss")) == [0, 6, 12, 16]
    assert sorted(s.step for s in acc.Scalars("hellaswag/acc_norm")) == [0, 6, 12, 16]


def test_samples_are_text_at_their_steps(resumed):
    events, acc = resumed["events"], resumed["acc"]
    assert "samples" in acc.Tags()["tensors"]
    texts = {t.step: t.tensor_proto.string_val[0].decode("utf-8") for t in acc.Tensors("samples")}
    samples = {e["step"]: e for e in events if e["type"] == "sample"}
    assert sorted(texts) == sorted(samples)
    for step, event in samples.items():
        assert event["prompt"] in texts[step]
        assert all(text in texts[step] for text in event["texts"])


def test_an_existing_directory_is_never_written_into(resumed, capsys, tmp_path):
    root = ["--runs-root", str(resumed["store"].root)]
    before = sorted(p.name for p in resumed["out"].iterdir())
    assert main(["export", resumed["run"].id, "--tensorboard", str(resumed["out"]), *root]) == 1
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in resumed["out"].iterdir()) == before
    run_id = resumed["run"].id
    assert main(["export", run_id, "--tensorboard", str(tmp_path / "x"), "--step", "3", *root]) == 1
    assert "--step" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["export", run_id, "--tensorboard", str(tmp_path / "x"), "-o", "m.csv", *root]) == 1
    assert "--output" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_an_existing_empty_directory_is_kept_and_filled(resumed, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    inode = out.stat().st_ino
    assert main(["export", resumed["run"].id, "--tensorboard", str(out),
                 "--runs-root", str(resumed["store"].root)]) == 0
    assert out.stat().st_ino == inode
    assert [p.name.startswith("events.out.tfevents") for p in out.iterdir()] == [True]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".empty.tmp-")]  # no staging left behind


def test_the_live_mirror_holds_what_the_export_holds(resumed):
    """[log] tensorboard = true: two trainer processes each appended to <run>/tensorboard/; TensorBoard's
    reader, honouring the resumed process's restart marker, sees exactly the stitched export."""
    exported, live = resumed["acc"], resumed["live"]
    assert len(list((resumed["run"].dir / "tensorboard").iterdir())) == 2  # one event file per process
    assert set(live.Tags()["scalars"]) == set(exported.Tags()["scalars"])
    for tag in exported.Tags()["scalars"]:
        want = [(s.step, s.wall_time, s.value) for s in exported.Scalars(tag)]
        got = sorted((s.step, s.wall_time, s.value) for s in live.Scalars(tag))
        assert got == want, tag
    # Text is a tensor summary: the reader TensorBoard's server uses for plugins purges those at a restart too
    # (the legacy EventAccumulator above purges only scalars, images and histograms).
    server_reader = PluginEventAccumulator(str(resumed["run"].dir / "tensorboard"),
                                           size_guidance={"tensors": 0})
    server_reader.Reload()
    want = {t.step: t.tensor_proto.string_val[0] for t in exported.Tensors("samples")}
    got = [(t.step, t.tensor_proto.string_val[0]) for t in server_reader.Tensors("samples")]
    assert sorted(got) == sorted(want.items())
    losses = [(t.step, t.wall_time) for t in server_reader.Tensors("train/loss")]
    assert sorted(losses) == [(s.step, s.wall_time) for s in exported.Scalars("train/loss")]


def test_without_the_tensorboard_package_the_live_mirror_is_one_warning(tmp_path, monkeypatch):
    from tui_trainer.channel.writer import EventWriter
    from tui_trainer.export.tensorboard_live import start_mirror
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)  # ImportError
    writer = EventWriter(tmp_path / "events.jsonl")
    assert start_mirror(tmp_path, writer.path, start_step=0, carry_evals=False, events=writer) is None
    writer.close()
    logged = H.read_events(tmp_path)
    assert [e["level"] for e in logged] == ["warning"] and "pip install" in logged[0]["message"]
    assert not (tmp_path / "tensorboard").exists()
