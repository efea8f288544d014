"""system.compile = true for real: Inductor on the CPU under two gloo ranks, against the eager run.

One eager and one compiled run of the tiny model, both with gradient accumulation, evaluation, HellaSwag, a
sample and checkpoints; then the compiled run resumed from its middle checkpoint. Tolerance: the compiled
losses equal the eager ones to 1e-4 relative (fp32; Inductor may fuse and reorder float sums, which moves the
last bits).

Cost: Inductor compiles the forward and backward once per rank; the resume reads them from the test's own
Inductor cache. The whole test took 41 s on 2 cores at load average ~1.5 (216 s at ~10).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest


from .harness import check_events, of_type, prepared_workdir, read_events, run_trainer, step_losses

pytestmark = pytest.mark.slow
TOLERANCE = 1e-4
EXAMPLES = [{"ctx": f"The {w} was on the table.", "label": i % 4,
             "endings": ["It fell off.", "Someone ate it.", "It stayed there.", "The table broke."]}
            for i, w in enumerate(["cup", "book", "lamp", "plate", "key", "phone"])]
# accumulation (512 tokens = 2 micro-steps × 2 ranks × 4 × 32): DDP's no-sync micro-step under compile
RUN = ["schedule.max_steps=4", "optim.total_batch_size=512", "eval.every=2", "eval.hellaswag_every=2",
       "sample.every=2", "checkpoint.every=2"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = prepared_workdir(tmp_path_factory, "compile")
    (root / "hellaswag.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    return root


def _run(workdir: Path, name: str, *extra: str, resume: bool = False):
    # The test's own Inductor cache: proof that Inductor really compiled, and warm for the resume.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "inductor-cache")
    try:
        result = run_trainer(workdir / "tiny.toml", workdir / name, *RUN, *extra,
                             f"eval.hellaswag_path='{workdir / 'hellaswag.jsonl'}'", nproc=2, resume=resume,
                             timeout=300)
    finally:
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert result.returncode == 0, result.stderr[-4000:]
    events = read_events(workdir / name)
    check_events(events)
    return events


def test_compiled_ddp_run_matches_eager_through_eval_sample_checkpoint_and_resume(workdir):
    eager = _run(workdir, "eager")
    compiled = _run(workdir, "compiled", "system.compile=true")
    assert any((workdir / "inductor-cache").rglob("*.py")), "Inductor wrote no kernels: nothing was compiled"

    ref = step_losses(eager)
    assert sorted(ref) == [0, 1, 2, 3] and [s["grad_accum_steps"] for s in of_type(eager, "run_start")] == [2]
    assert step_losses(compiled) == pytest.approx(ref, rel=TOLERANCE, abs=0)
    ref_val = {e["step"]: e["loss"] for e in of_type(eager, "val")}
    assert {e["step"]: e["loss"] for e in of_type(compiled, "val")} == pytest.approx(ref_val, rel=TOLERANCE)
    for events in (eager, compiled):
        assert [(h["step"], h["total"]) for h in of_type(events, "hellaswag")] == [(0, 6), (2, 6), (4, 6)]
        assert [(s["step"], len(s["texts"])) for s in of_type(events, "sample")] == [(0, 2), (2, 2), (4, 2)]
        assert [c["step"] for c in of_type(events, "checkpoint")] == [2, 4]

    # Resume the compiled run from its step-2 checkpoint, as after a crash at step 3.
    shutil.copytree(workdir / "compiled", workdir / "resumed")
    shutil.rmtree(workdir / "resumed" / "checkpoints" / "step-00000004")
    resumed = _run(workdir, "resumed", "system.compile=true", resume=True)
    starts = of_type(resumed, "run_start")
    assert [s["start_step"] for s in starts] == [0, 2] and starts[1]["resumed_from_step"] == 2
    after = {e["step"]: e["loss"] for e in of_type(resumed, "step") if e["seq"] > starts[1]["seq"]}
    assert after == pytest.approx({2: ref[2], 3: ref[3]}, rel=TOLERANCE, abs=0)
    final_val = [e["loss"] for e in of_type(resumed, "val") if e["step"] == 4][-1]
    assert final_val == pytest.approx(ref_val[4], rel=TOLERANCE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compile_wraps_the_ddp_module_so_all_reduce_overlaps_backward(monkeypatch):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from tui_trainer.training.lib.distributed import DistContext, wrap_for_training
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        ctx = DistContext(world_size=1, backend="gloo")
        raw = torch.nn.Linear(4, 4)
        trained = wrap_for_training(raw, ctx, compile=True)
        # compile outermost, DDP inside it, the raw module inside DDP (evaluation keeps using `raw`)
        assert isinstance(trained._orig_mod, DistributedDataParallel) and trained._orig_mod is ctx.ddp_model
        assert ctx.ddp_model.module is raw
        trained.require_backward_grad_sync = False  # the step's no-sync switch reaches DDP through compile
        assert ctx.ddp_model.require_backward_grad_sync is False
        assert wrap_for_training(raw, DistContext(), compile=False) is raw
        ctx.ddp_model = trained = None
    finally:
        dist.destroy_process_group()
