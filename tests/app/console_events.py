"""Hand-written events for the console's unit and Pilot tests (the schema in tui_trainer/channel/schema.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tui_trainer.channel.schema import validate_event


class EventLog:
    """Builds a schema-valid event list with increasing seq; ``write`` appends it to a run's events.jsonl."""

    def __init__(self, t0: float = 1000.0) -> None:
        self.events: list[dict] = []
        self.t = t0

    def add(self, kind: str, after: float = 1.0, **payload) -> dict:
        """An event ``after`` seconds after the previous one."""
        self.t += after
        event = {"v": 1, "seq": len(self.events), "t": self.t, "type": kind, **payload}
        problems = validate_event(event)
        assert not problems, problems  # the tests must speak the real schema
        self.events.append(event)
        return event

    def start(self, *, start_step: int = 0, resumed: int | None = None, max_steps: int = 100,
              prompt: str = "Hello", after: float = 0.0) -> dict:
        return self.add("run_start", after, config={"sample": {"prompt": prompt}}, trainer="train", params=1234,
                        world_size=2, device="cpu", device_name="Test CPU", dtype="float32", grad_accum_steps=2,
                        max_steps=max_steps, start_step=start_step, resumed_from_step=resumed, peak_flops=None)

    def step(self, n: int, loss: float, *, dt: float = 1.0, tokens_per_step: int = 256) -> dict:
        return self.add("step", dt, step=n, loss=loss, lr=1e-3, grad_norm=0.5, dt=dt, tok_per_s=1000.0,
                        tokens=(n + 1) * tokens_per_step, mfu=None)

    def write(self, path: Path) -> None:
        with open(path, "a", encoding="utf-8") as f:
            for event in self.events:
                f.write(json.dumps(event) + "\n")
