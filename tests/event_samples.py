"""Schema-valid events of every type, for the channel's tests (override any field by keyword)."""

from __future__ import annotations

import json

PAYLOADS: dict[str, dict] = {
    "run_start": dict(config={"model": {"n_layer": 2}, "sample": {"prompt": "Hi"}}, trainer="train",
                      params=1234, world_size=1, device="cpu", device_name="Test CPU", dtype="float32",
                      grad_accum_steps=1, max_steps=60, start_step=0, resumed_from_step=None,
                      peak_flops=None),
    "step": dict(step=0, loss=10.5, lr=6e-4, grad_norm=1.25, dt=0.5, tok_per_s=2048.0, tokens=1024, mfu=None),
    "val": dict(step=0, loss=10.9),
    "hellaswag": dict(step=0, correct=3, correct_norm=4, total=10, acc=0.3, acc_norm=0.4),
    "sample": dict(step=0, prompt="Hello", texts=["world", "there"], source="schedule"),
    "checkpoint": dict(step=0, path="/tmp/run/checkpoints/step-00000000", reason="schedule"),
    "heartbeat": dict(step=0),
    "control_ack": dict(id="abc", action="eval", step=0, ok=True, message=""),
    "log": dict(level="info", message="hello"),
    "error": dict(message="boom", traceback=""),
    "run_end": dict(status="finished", reason="done", step=0),
    "system": dict(step=0, interval_s=10.0, ranks=[dict(
        rank=0, node=0, age_s=0.5, rss_bytes=400 << 20, cpu_percent=150.0, host_mem_available_bytes=20 << 30,
        host_mem_total_bytes=24 << 30, gpu_index=None, gpu_util_percent=None, gpu_mem_used_bytes=None,
        gpu_mem_total_bytes=None, gpu_power_watts=None, gpu_temperature_c=None,
        torch_max_memory_allocated_bytes=None)]),
}


def event(seq: int, kind: str = "step", **payload) -> dict:
    return {"v": 1, "seq": seq, "t": 1000.0 + seq, "type": kind, **PAYLOADS[kind], **payload}


def line(seq: int, kind: str = "step", **payload) -> bytes:
    return (json.dumps(event(seq, kind, **payload)) + "\n").encode()
