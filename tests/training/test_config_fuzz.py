"""Property-based tests over the config schema (hypothesis): whatever the validator accepts, the trainer runs.

* Any value for any key: the validator and the memory check either accept the config or refuse it with a
  ConfigError naming keys — never another exception.
* Configs on a tiny shape with every training key drawn from its accepted range, extremes included (plus now
  and then a value outside it): each one the validator accepts trains to its end in-process (finished, or
  failed as a diverged run), or is refused before anything is allocated; never a traceback.
Bounded: 300 validator examples, 16 training runs of at most 3 steps each (in-process: no torch import each).
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="in the test extras: pip install -e .[test]")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# The same examples on every CI run (a red CI must be reproducible); GPT_CONSOLE_FUZZ_RANDOM=1 explores new ones.
DERANDOMIZE = os.environ.get("GPT_CONSOLE_FUZZ_RANDOM") != "1"

from tui_trainer.training.lib.config import (  # noqa: E402
    ConfigError, config_from_dict, config_schema, config_to_toml, load_config,
)
from tui_trainer.training.lib.config_limits import INT64_MAX  # noqa: E402
from tui_trainer.training.lib.memory_check import check_memory  # noqa: E402

from .harness import read_events, write_config, write_corpus  # noqa: E402

SPECS = config_schema()
JUNK = st.sampled_from([-1, 0, -0.0, math.nan, math.inf, -math.inf, 2**63, 2**64, 10**20, -(2**70), 1e308,
                        "", "\0", "x\0y", "cuda:99", "  ", True, False, [], {}, {"A": 1}, {"1BAD": "x"}])


def any_value(spec) -> st.SearchStrategy:
    """Anything TOML or --set could produce for this key, valid or not, extremes weighted in."""
    edges = [v for v in (spec.min, spec.max) if v is not None]
    near = [e + d for e in edges for d in (-1, 0, 1)] if spec.type is int else edges
    typed = {int: st.integers(-(2**70), 2**70), float: st.floats(allow_nan=True, allow_infinity=True),
             bool: st.booleans(), str: st.text(max_size=12),
             dict: st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2)}
    options = [typed[spec.type], JUNK, st.just(spec.default)]
    if spec.choices:
        options.append(st.sampled_from(spec.choices))
    if near:
        options.append(st.sampled_from([type(spec.default)(v) if spec.type is not bool else v for v in near]))
    return st.one_of(options)


@st.composite
def any_config(draw) -> dict:
    chosen = draw(st.lists(st.sampled_from(SPECS), max_size=8, unique_by=lambda s: s.key))
    data: dict = {}
    for spec in chosen:
        data.setdefault(spec.section, {})[spec.name] = draw(any_value(spec))
    return data


@settings(max_examples=300, deadline=None, database=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.too_slow])
@given(any_config())
def test_the_validator_accepts_or_names_the_problem(data):
    import torch
    try:
        cfg = config_from_dict(data)
        check_memory(cfg, torch.device("cpu"))
    except ConfigError as e:
        assert e.problems and all(p.key and p.reason for p in e.problems if p.key != ""), e
        return
    for spec in SPECS:
        value = getattr(getattr(cfg, spec.section), spec.name)
        if spec.type is int:
            assert spec.min <= value <= spec.max <= INT64_MAX, spec.key
        if spec.type is float:
            assert math.isfinite(value) and spec.min <= value <= spec.max, spec.key
        if spec.type is str:
            assert "\0" not in value, spec.key


# -------------------------------------------------------------------------------------- training runs
def _bounded(spec, lo=None, hi=None) -> st.SearchStrategy:
    """Values the validator accepts for ``spec`` (within [lo, hi] when the run must stay short), its extremes
    and now and then one it does not."""
    lo = spec.min if lo is None else lo
    hi = spec.max if hi is None else hi
    if spec.type is int:
        valid = st.one_of(st.integers(int(lo), int(hi)), st.sampled_from([int(lo), int(hi)]))
    elif spec.type is float:
        valid = st.one_of(st.floats(lo, hi, allow_nan=False), st.sampled_from([lo, hi]))
    elif spec.type is bool:
        valid = st.booleans()
    elif spec.choices:
        valid = st.sampled_from(spec.choices)
    else:
        valid = st.one_of(st.text(max_size=24), st.sampled_from(["", "<|endoftext|>", "\n\n", "héllo 👋"]))
    return valid


def _spec(key: str):
    return next(s for s in SPECS if s.key == key)


# Keys that only change how long a run takes or which files it reads are held short and local; every other
# key of these sections is drawn over its whole accepted range.
SHORT = {
    "schedule.max_steps": (1, 3), "schedule.warmup_steps": (0, 1), "eval.val_steps": (1, 3),
    "sample.top_k": (1, 50304),  # above model.vocab_size is a cross-key refusal, covered by the test above
    "eval.every": (0, 3), "sample.every": (0, 3), "sample.count": (1, 2), "sample.max_tokens": (1, 4),
    "checkpoint.every": (0, 3), "system.log_every": (1, 3), "optim.micro_batch_size": (1, 4),
    "system.threads": (0, 1), "optim.spike_window": (0, 20), "system.heartbeat_seconds": (0.5, 60.0),
    "system.metrics_seconds": (0.0, 60.0),
}
FIXED_SECTIONS = ("model", "data", "launch", "slurm")  # the tiny shape, the prepared corpus, one process
FIXED = {"eval.hellaswag_every": 0, "eval.hellaswag_examples": 0, "eval.hellaswag_path": "",
         "system.device": "cpu", "system.compile": False}
TRAINED = [s for s in SPECS if s.section not in FIXED_SECTIONS and s.key not in FIXED]


@st.composite
def training_config(draw) -> dict:
    data: dict = {}
    for spec in TRAINED:
        lo, hi = SHORT.get(spec.key, (None, None))
        data.setdefault(spec.section, {})[spec.name] = draw(_bounded(spec, lo, hi))
    data["optim"]["total_batch_size"] = data["optim"]["micro_batch_size"] * 32 * draw(st.integers(1, 2))
    if draw(st.integers(0, 3)) == 0:  # now and then one key outside its range: the validator must refuse it
        spec = draw(st.sampled_from(TRAINED))
        data[spec.section][spec.name] = draw(JUNK)
    return data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    from tui_trainer.training.lib.shards import ensure_shards
    root = tmp_path_factory.mktemp("fuzz")
    path = write_config(root, write_corpus(root), root / "shards")
    ensure_shards(load_config(path))
    base = load_config(path)
    fixed = {section: dict(vars(getattr(base, section))) for section in FIXED_SECTIONS}
    for key, value in FIXED.items():
        section, name = key.split(".")
        fixed.setdefault(section, {})[name] = value
    return root, fixed


@pytest.fixture()
def trainer_process_state():
    """main() installs signal handlers and sets torch's thread count: give the test process its own back."""
    import torch
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    threads = torch.get_num_threads()
    yield
    for s, h in handlers.items():
        signal.signal(s, h)
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_every_accepted_config_trains_or_is_refused_before_allocation(tiny, trainer_process_state):
    from tui_trainer.training import train as trainer
    root, fixed = tiny
    runs = iter(range(10**6))

    @settings(max_examples=16, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(training_config())
    def check(data):
        for section, values in fixed.items():
            data.setdefault(section, {}).update(values)
        try:
            cfg = config_from_dict(data)
        except ConfigError:
            return  # refused up front: nothing was run
        run_dir = root / f"run-{next(runs)}"
        config = run_dir.with_suffix(".toml")
        config.write_text(config_to_toml(cfg), encoding="utf-8")
        code = trainer.main(["--config", str(config), "--run-dir", str(run_dir)])
        events = read_events(run_dir)
        tracebacks = [e["traceback"] for e in events if e["type"] == "error" and e["traceback"]]
        assert tracebacks == [], tracebacks[0]
        end = events[-1]
        assert end["type"] == "run_end", events[-3:]
        if code == 2:  # refused: a user error, before any step
            assert end["status"] == "failed" and not any(e["type"] == "step" for e in events)
        elif code == 1:  # trained, and stopped as a diverged run
            assert end["status"] == "failed" and end["reason"].startswith("diverged at step"), end
        else:
            assert code == 0 and end["status"] == "finished" and end["step"] == cfg.schedule.max_steps, end

    check()
