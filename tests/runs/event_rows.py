"""A small schema-valid event log for the runs tests."""

from __future__ import annotations

import json

RUN_START = dict(config={"model": {"n_layer": 2}}, trainer="train", params=1234, world_size=1, device="cpu",
                 device_name="Test CPU", dtype="float32", grad_accum_steps=1, max_steps=60, start_step=0,
                 resumed_from_step=None, peak_flops=None)


def events(steps: int) -> list[dict]:
    out = [{"type": "run_start", **RUN_START}]
    out += [{"type": "step", "step": i, "loss": 10.0 - i * 0.1, "lr": 6e-4, "grad_norm": 1.0, "dt": 0.5,
             "tok_per_s": 2048.0, "tokens": 1024 * (i + 1), "mfu": None} for i in range(steps)]
    out += [{"type": "val", "step": steps, "loss": 9.5},
            {"type": "sample", "step": steps, "prompt": "Hi", "texts": ["there"], "source": "final"},
            {"type": "run_end", "status": "finished", "reason": "reached max_steps", "step": steps}]
    return [{"v": 1, "seq": i, "t": 1_700_000_000.0 + i, **e} for i, e in enumerate(out)]


def write_log(path, steps: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for event in events(steps):
            f.write(json.dumps(event) + "\n")
