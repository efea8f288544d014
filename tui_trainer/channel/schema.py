"""The event schema: one JSON object a line in ``<run_dir>/events.jsonl``, written by rank 0.

Every event has the envelope ``{"v": SCHEMA_VERSION, "seq": n, "t": unix_seconds, "type": ..., **payload}``.
``seq`` starts at 0 for a fresh log and continues across resumes (the writer reads the last seq back), so a
follower can detect gaps. Payload fields are listed in ``EVENT_FIELDS`` as name -> allowed JSON types; a field
typed with ``None`` may be null (e.g. MFU on a device with no known peak). Extra fields are allowed (forward
compatible); missing required ones are not. docs/events.md is the prose version of this module.

Stdlib only: the console, the launcher and both trainers share it (the one-file trainer mirrors it inline).
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_STR = (str,)
_OPT_STR = (str, type(None))
_INT = (int,)
_BOOL = (bool,)
_LIST = (list,)
_DICT = (dict,)

ENVELOPE: dict[str, tuple[type, ...]] = {"v": _INT, "seq": _INT, "t": _NUM, "type": _STR}

EVENT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    # Once per process start (a resume writes another, with resumed_from_step set).
    "run_start": {
        "config": _DICT,            # the resolved TrainingConfig as a dict of sections
        "trainer": _STR,            # "train" or "onefile"
        "params": _INT,             # parameter count (tied head counted once)
        "world_size": _INT,
        "device": _STR,             # e.g. "cpu", "cuda:0"
        "device_name": _STR,        # human name, e.g. "NVIDIA H100 80GB HBM3" or the CPU model
        "dtype": _STR,              # autocast dtype actually used: "float32" or "bfloat16"
        "grad_accum_steps": _INT,
        "max_steps": _INT,
        "start_step": _INT,         # first step this process will run (0 when fresh)
        "resumed_from_step": (int, type(None)),  # checkpoint step resumed from, or null
        "peak_flops": _OPT_NUM,     # per-rank peak FLOP/s used for MFU, null when unknown
    },
    # One optimizer step (every system.log_every steps). tok_per_s and mfu exclude eval/sampling time.
    "step": {
        "step": _INT,               # 0-based index of the step just completed
        "loss": _NUM,               # mean training loss over the step's micro-batches and ranks
        "lr": _NUM,
        "grad_norm": _NUM,          # global norm before clipping
        "dt": _NUM,                 # seconds for this step (training work only)
        "tok_per_s": _NUM,          # tokens trained per second, all ranks
        "tokens": _INT,             # tokens trained so far in the run, all ranks
        "mfu": _OPT_NUM,            # model FLOPs utilisation in [0, 1], null when the peak is unknown
    },
    "val": {"step": _INT, "loss": _NUM},
    "hellaswag": {
        "step": _INT, "correct": _INT, "correct_norm": _INT, "total": _INT,
        "acc": _NUM, "acc_norm": _NUM,
    },
    "sample": {
        "step": _INT,
        "prompt": _STR,
        "texts": _LIST,             # list of generated strings (prompt excluded)
        "source": _STR,             # "schedule", "control" (sample-now) or "final"
    },
    "checkpoint": {"step": _INT, "path": _STR, "reason": _STR},  # reason: schedule/stop/control/final
    "heartbeat": {"step": _INT},
    "control_ack": {"id": _STR, "action": _STR, "step": _INT, "ok": _BOOL, "message": _STR},
    "log": {"level": _STR, "message": _STR},
    "error": {"message": _STR, "traceback": _STR},
    # status: "finished" (reached max_steps), "stopped" (signal or stop control), "failed" (exception).
    "run_end": {"status": _STR, "reason": _STR, "step": _INT},
}

EVENT_TYPES: tuple[str, ...] = tuple(EVENT_FIELDS)
END_STATUSES: tuple[str, ...] = ("finished", "stopped", "failed")


def validate_event(event: Any) -> list[str]:
    """Problems with one decoded event (empty list = valid)."""
    if not isinstance(event, dict):
        return [f"event is {type(event).__name__}, not an object"]
    problems = []
    for name, types in ENVELOPE.items():
        if name not in event:
            problems.append(f"missing envelope field '{name}'")
        elif not isinstance(event[name], types) or isinstance(event[name], bool) and bool not in types:
            problems.append(f"'{name}' has type {type(event[name]).__name__}")
    fields = EVENT_FIELDS.get(event.get("type"))  # type: ignore[arg-type]
    if fields is None:
        return problems + [f"unknown event type {event.get('type')!r}"]
    if event.get("v") != SCHEMA_VERSION:
        problems.append(f"schema version {event.get('v')!r}, expected {SCHEMA_VERSION}")
    for name, types in fields.items():
        if name not in event:
            problems.append(f"{event['type']}: missing '{name}'")
            continue
        value = event[name]
        if isinstance(value, bool) and bool not in types:
            problems.append(f"{event['type']}.{name}: bool where {types} expected")
        elif not isinstance(value, types):
            problems.append(f"{event['type']}.{name}: {type(value).__name__} where "
                            f"{'/'.join(t.__name__ for t in types)} expected")
    if event["type"] == "sample" and not all(isinstance(t, str) for t in event.get("texts", [])):
        problems.append("sample.texts must be strings")
    if event["type"] == "run_end" and event.get("status") not in END_STATUSES:
        problems.append(f"run_end.status {event.get('status')!r} not in {END_STATUSES}")
    return problems
