"""The event schema: one JSON object a line in ``<run_dir>/events.jsonl``, written by rank 0.

Every event has the envelope ``{"v": SCHEMA_VERSION, "seq": n, "t": unix_seconds, "type": ..., **payload}``.
``seq`` starts at 0 for a fresh log and continues across resumes (the writer reads the last seq back), so a
follower can detect gaps. Payload fields are listed in ``EVENT_FIELDS`` as name -> ``Field`` (JSON type
plus the values a reader accepts: ranges, finiteness, text length, nullability); cross-field rules live in
``EVENT_RULES``. Extra fields are allowed (forward compatible) and ignored by readers; missing required ones
are not. docs/events.md is the prose version of this module. Readers (the follower) drop an event that
``event_problem`` finds fault with, so nothing downstream sees a string time, a negative step or a bool
where a number goes.

Stdlib only: the console, the launcher and both trainers share it (the one-file trainer mirrors it inline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

SCHEMA_VERSION = 1

# Field kinds. A field is checked for its JSON type first, then for the values a reader can show: bool is
# never an int or a number, numbers are finite unless the field says otherwise, text and lists are bounded.
INT, NUM, TEXT, BOOL, TEXTS, CONFIG = "int", "num", "text", "bool", "texts", "config"
MAX_INT = 2**63 - 1              # steps, counters and token totals fit a signed 64-bit int
MAX_TIME = 1e11                  # unix seconds (year ~5100): beyond it time.localtime() overflows
MAX_NUM = 3.4e38                 # float32's largest: no measured figure exceeds it; 1e308 breaks chart maths
SHORT_TEXT = 256                 # names, levels, ids, devices
LONG_TEXT = 1 << 20              # messages, tracebacks, prompts, generated samples (characters)
MAX_EXTRA_DEPTH = 8              # fields outside the schema may nest this deep, no deeper


@dataclass(frozen=True)
class Field:
    """What one payload field may hold; build it with the helpers: ``Int(lo=1)``, ``Num(nullable=True)``.

    ``lo``/``hi`` are inclusive bounds (numbers; the length for text); ``finite=False`` lets a number be NaN
    or +/-inf (a diverged loss); ``choices`` limits text to a closed set; ``max_items`` bounds a text list.
    """
    kind: str
    nullable: bool = False
    lo: float | None = None
    hi: float | None = None
    finite: bool = True
    choices: tuple[str, ...] | None = None
    max_items: int = 0


def Int(lo: int = 0, hi: int = MAX_INT, *, nullable: bool = False) -> Field:
    return Field(INT, nullable, lo, hi)


def Num(lo: float | None = 0.0, hi: float | None = None, *, nullable: bool = False,
        finite: bool = True) -> Field:
    return Field(NUM, nullable, lo, hi, finite)


def Text(max_len: int = SHORT_TEXT, *, choices: tuple[str, ...] | None = None) -> Field:
    return Field(TEXT, hi=max_len, choices=choices)


def Bool() -> Field:
    return Field(BOOL)


def Texts(max_items: int = 1024, max_len: int = LONG_TEXT) -> Field:
    return Field(TEXTS, hi=max_len, max_items=max_items)


def ConfigDict() -> Field:
    """``{section: {key: scalar or flat list of scalars}}``, the resolved TrainingConfig."""
    return Field(CONFIG)


STEP = Int()                     # every ``step`` field: 0 <= step < 2**63
END_STATUSES: tuple[str, ...] = ("finished", "stopped", "failed")

ENVELOPE: dict[str, Field] = {
    "v": Int(SCHEMA_VERSION, SCHEMA_VERSION), "seq": Int(), "t": Num(0.0, MAX_TIME), "type": Text(),
}

# Adding an event type is one entry here (and its prose in docs/events.md): field name -> Field.
EVENT_FIELDS: dict[str, dict[str, Field]] = {
    # Once per process start (a resume writes another, with resumed_from_step set).
    "run_start": {
        "config": ConfigDict(),     # the resolved TrainingConfig as a dict of sections
        "trainer": Text(),          # "train" or "onefile"
        "params": Int(),            # parameter count (tied head counted once)
        "world_size": Int(1, 1 << 24),
        "device": Text(),           # e.g. "cpu", "cuda:0"
        "device_name": Text(),      # human name, e.g. "NVIDIA H100 80GB HBM3" or the CPU model
        "dtype": Text(),            # autocast dtype actually used: "float32" or "bfloat16"
        "grad_accum_steps": Int(1, 1 << 40),
        "max_steps": Int(1),
        "start_step": STEP,         # first step this process will run (0 when fresh)
        "resumed_from_step": Int(nullable=True),  # checkpoint step resumed from, or null
        "peak_flops": Num(nullable=True),         # per-rank peak FLOP/s used for MFU, null when unknown
    },
    # One optimizer step (every system.log_every steps). tok_per_s and mfu exclude eval/sampling time.
    "step": {
        "step": STEP,               # 0-based index of the step just completed
        "loss": Num(finite=False),  # mean loss over the step's micro-batches and ranks (NaN: diverged)
        "lr": Num(),
        "grad_norm": Num(finite=False),  # global norm before clipping
        "dt": Num(),                # seconds for this step (training work only)
        "tok_per_s": Num(),         # tokens trained per second, all ranks
        "tokens": Int(),            # tokens trained so far in the run, all ranks
        "mfu": Num(nullable=True),  # model FLOPs utilisation in [0, 1], null when the peak is unknown
    },
    "val": {"step": STEP, "loss": Num(finite=False)},
    "hellaswag": {
        "step": STEP, "correct": Int(), "correct_norm": Int(), "total": Int(),
        "acc": Num(0.0, 1.0), "acc_norm": Num(0.0, 1.0),
    },
    "sample": {
        "step": STEP,
        "prompt": Text(LONG_TEXT),
        "texts": Texts(1 << 16),    # list of generated strings (prompt excluded)
        "source": Text(),           # "schedule", "control" (sample-now) or "final"
    },
    # reason: schedule/stop/control/final
    "checkpoint": {"step": STEP, "path": Text(LONG_TEXT), "reason": Text()},
    "heartbeat": {"step": STEP},
    "control_ack": {"id": Text(), "action": Text(), "step": STEP, "ok": Bool(), "message": Text(LONG_TEXT)},
    "log": {"level": Text(), "message": Text(LONG_TEXT)},
    "error": {"message": Text(LONG_TEXT), "traceback": Text(LONG_TEXT)},
    # status: "finished" (reached max_steps), "stopped" (signal or stop control), "failed" (exception).
    "run_end": {"status": Text(choices=END_STATUSES), "reason": Text(LONG_TEXT), "step": STEP},
    # A diverging run (lib/health.py): "nonfinite" (a NaN/inf loss or grad norm: that update was skipped; extra
    # field bad_steps = how many in a row) or "spike" (loss far above its recent median; extra fields baseline,
    # threshold). loss/grad_norm are null when not finite. step: 0-based index of the step just trained.
    "alert": {"step": STEP, "kind": Text(choices=("nonfinite", "spike")), "message": Text(LONG_TEXT),
              "loss": Num(lo=None, nullable=True), "grad_norm": Num(nullable=True)},
    # Every system.metrics_seconds: each rank's machine figures; "ranks" (one object per rank, rank order) is
    # checked by the EVENT_RULES entry below against SYSTEM_RANK_FIELDS.
    "system": {"step": STEP, "interval_s": Num()},
}

# Rules across fields of one type: type -> [(problem message, predicate that holds for a valid event)].
EVENT_RULES: dict[str, list[tuple[str, Callable[[dict], bool]]]] = {
    "hellaswag": [("correct and correct_norm must not exceed total",
                   lambda e: e["correct"] <= e["total"] and e["correct_norm"] <= e["total"])],
    "system": [("ranks must be a list of per-rank figures (docs/events.md, system)",
                lambda e: _system_ranks_ok(e.get("ranks")))],
}

EVENT_TYPES: tuple[str, ...] = tuple(EVENT_FIELDS)


def validate_event(event: Any) -> list[str]:
    """Problems with one decoded event (empty list = valid). Fields not in the schema are not checked."""
    if not isinstance(event, dict):
        return [f"event is {type(event).__name__}, not an object"]
    problems = [p for name, spec in ENVELOPE.items() if (p := _field_problem("", name, spec, event))]
    kind = event.get("type")
    fields = EVENT_FIELDS.get(kind) if type(kind) is str else None
    if fields is None:
        return problems + [f"unknown event type {_short(event.get('type'))}"]
    kind = event["type"]
    problems += [p for name, spec in fields.items() if (p := _field_problem(kind, name, spec, event))]
    if not problems:
        problems += [message for message, holds in EVENT_RULES.get(kind, ()) if not holds(event)]
    problems += [f"field '{_short(name)}' nests deeper than {MAX_EXTRA_DEPTH}"
                 for name, value in event.items()
                 if name not in fields and name not in ENVELOPE and not _shallow(value, MAX_EXTRA_DEPTH)]
    return problems


def event_problem(event: Any) -> str | None:
    """The first problem with one decoded event, or None when it is valid (the readers' fast path)."""
    if type(event) is not dict:
        return "not an object"
    kind = event.get("type")
    fields = EVENT_FIELDS.get(kind) if type(kind) is str else None
    if fields is None:
        return f"unknown event type {_short(event.get('type'))}"
    for checks in (_ENVELOPE_CHECKS, _CHECKS[event["type"]]):
        for name, check in checks:
            if name not in event:
                return f"missing '{name}'"
            if not check(event[name]):
                return f"bad '{name}'"
    for message, holds in EVENT_RULES.get(event["type"], ()):
        if not holds(event):
            return message
    if len(event) > len(ENVELOPE) + len(fields):  # forward-compatible extras: any JSON, but nothing deep
        for name, value in event.items():
            if name not in fields and name not in ENVELOPE and not _shallow(value, MAX_EXTRA_DEPTH):
                return f"field '{_short(name)}' nests deeper than {MAX_EXTRA_DEPTH}"
    return None


def is_known_type(event: Any) -> bool:
    return type(event) is dict and type(event.get("type")) is str and event["type"] in EVENT_FIELDS


# ------------------------------------------------------------------------------------------------ checks
def _field_problem(kind: str, name: str, spec: Field, event: dict) -> str | None:
    where = f"{kind}.{name}" if kind else name
    if name not in event:
        return f"missing '{where}'"
    if not _checker(spec)(event[name]):
        return f"'{where}' = {_short(event[name])} is not {_describe(spec)}"
    return None


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(spec: Field) -> str:
    text = {INT: "an int", NUM: "a number", TEXT: "a string", BOOL: "a bool", TEXTS: "a list of strings",
            CONFIG: "a config object"}[spec.kind]
    if spec.kind in (INT, NUM):
        text += f" in [{spec.lo}, {spec.hi}]" if spec.hi is not None else f" >= {spec.lo}"
        if spec.kind == NUM and spec.finite:
            text = "a finite " + text[2:]
    elif spec.kind in (TEXT, TEXTS):
        text += f" of at most {spec.hi} characters"
    if spec.choices:
        text += f" in {spec.choices}"
    return text + (" or null" if spec.nullable else "")


def _clean_text(value: Any, max_len: float | None) -> bool:
    if type(value) is not str or (max_len is not None and len(value) > max_len):
        return False
    if value.isascii():
        return True
    try:  # JSON can carry lone surrogates ("\ud800"): such a string cannot be printed or written as UTF-8
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _checker(spec: Field) -> Callable[[Any], bool]:
    """One predicate per field, built once: the follower runs it on every event it reads."""
    lo, hi = spec.lo, spec.hi
    if spec.kind == INT:
        def check(v: Any) -> bool:
            return type(v) is int and lo <= v <= hi  # type: ignore[operator]
    elif spec.kind == NUM:
        # NaN fails every comparison and +/-inf lie outside any finite bounds, so one chained comparison
        # checks range and finiteness together. An open side stops at MAX_NUM (charts and ETAs do arithmetic
        # on these); where non-finite values are allowed, so are NaN and the infinity of an open side.
        low = -MAX_NUM if lo is None else lo
        high = MAX_NUM if hi is None else hi
        inf_ok = (math.inf,) * (hi is None) + (-math.inf,) * (lo is None)
        if spec.finite:
            def check(v: Any) -> bool:
                return (type(v) is float or type(v) is int) and low <= v <= high
        else:
            def check(v: Any) -> bool:
                return (type(v) is float or type(v) is int) and (low <= v <= high or v != v or v in inf_ok)
    elif spec.kind == TEXT:
        choices = spec.choices

        def check(v: Any) -> bool:
            return _clean_text(v, hi) and (choices is None or v in choices)
    elif spec.kind == BOOL:
        def check(v: Any) -> bool:
            return type(v) is bool
    elif spec.kind == TEXTS:
        def check(v: Any) -> bool:
            return type(v) is list and len(v) <= spec.max_items and all(_clean_text(t, hi) for t in v)
    elif spec.kind == CONFIG:
        check = _config_ok
    else:
        raise ValueError(f"unknown field kind {spec.kind!r}")
    if spec.nullable:
        return lambda v: v is None or check(v)
    return check


def _shallow(v: Any, depth: int) -> bool:
    """Containers nest at most ``depth`` levels: no reader walking it can blow the stack."""
    if type(v) is dict:
        return depth > 0 and all(_shallow(x, depth - 1) for x in v.values())
    if type(v) is list:
        return depth > 0 and all(_shallow(x, depth - 1) for x in v)
    return True


def _scalar_ok(v: Any) -> bool:
    if type(v) is float:
        return v == v and v not in (math.inf, -math.inf)
    return v is None or type(v) in (int, bool) or _clean_text(v, 4096)


def _config_ok(v: Any) -> bool:
    """Two levels of objects, then scalars or flat lists/objects of them: nothing deep to walk."""
    if type(v) is not dict or len(v) > 64:
        return False
    for section, keys in v.items():
        if not _clean_text(section, SHORT_TEXT) or type(keys) is not dict or len(keys) > 512:
            return False
        for key, value in keys.items():
            if not _clean_text(key, SHORT_TEXT):
                return False
            if type(value) is list:
                if len(value) > 1024 or not all(_scalar_ok(item) for item in value):
                    return False
            elif type(value) is dict:  # e.g. launch.env: names to values
                if len(value) > 1024 or not all(_clean_text(k, SHORT_TEXT) and _scalar_ok(item)
                                                for k, item in value.items()):
                    return False
            elif not _scalar_ok(value):
                return False
    return True


def _compile(fields: dict[str, Field]) -> tuple[tuple[str, Callable[[Any], bool]], ...]:
    return tuple((name, _checker(spec)) for name, spec in fields.items())


_ENVELOPE_CHECKS = _compile(ENVELOPE)


class _Compiled(dict):
    """Type -> compiled checks, built on first use so types added to EVENT_FIELDS later are picked up."""

    def __missing__(self, kind: str) -> tuple[tuple[str, Callable[[Any], bool]], ...]:
        checks = self[kind] = _compile(EVENT_FIELDS[kind])
        return checks


_CHECKS = _Compiled()


# ------------------------------------------------------------------------------------------ system event
# One object per rank in a system event's "ranks"; any figure may be null (no NVML, a CPU run, a failed read).
SYSTEM_RANK_FIELDS: dict[str, Field] = {
    "rank": Int(0, 1 << 24), "node": Int(0, 1 << 24), "age_s": Num(nullable=True),
    "rss_bytes": Int(nullable=True), "cpu_percent": Num(nullable=True),
    "host_mem_available_bytes": Int(nullable=True), "host_mem_total_bytes": Int(nullable=True),
    "gpu_index": Int(nullable=True), "gpu_util_percent": Num(0.0, 100.0, nullable=True),
    "gpu_mem_used_bytes": Int(nullable=True), "gpu_mem_total_bytes": Int(nullable=True),
    "gpu_power_watts": Num(nullable=True), "gpu_temperature_c": Num(lo=None, nullable=True),
    "torch_max_memory_allocated_bytes": Int(nullable=True),
}
MAX_SYSTEM_RANKS = 1 << 16
_SYSTEM_RANK_CHECKS = _compile(SYSTEM_RANK_FIELDS)


def _system_ranks_ok(ranks: Any) -> bool:
    if type(ranks) is not list or not 0 < len(ranks) <= MAX_SYSTEM_RANKS:
        return False
    for index, record in enumerate(ranks):
        if type(record) is not dict or record.get("rank") != index:
            return False
        if not all(name in record and check(record[name]) for name, check in _SYSTEM_RANK_CHECKS):
            return False
    return True
