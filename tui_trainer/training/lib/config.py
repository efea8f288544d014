"""The one ``TrainingConfig``: TOML sections -> nested dataclasses, validated, with CLI overrides.

Stdlib only (the console imports it to build its form and validate as you type; it must not pull in torch).
Precedence: ``--set section.key=value`` overrides > the TOML file > the defaults below (GPT-2 124M).

Every field carries its help text, and where relevant its choices and bounds, in ``field.metadata``: the
console's form, the README's key reference and the validation messages are all generated from that.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .config_limits import INT64_MAX, LIMITS
from .errors import UserError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib  # type: ignore[no-redef]

GPT2_VOCAB = 50257  # tokens in the GPT-2 BPE; the model's table is padded above it


def _f(default: Any, help: str, *, choices: tuple[str, ...] | None = None,
       min: float | None = None, max: float | None = None, unit: str = "") -> Any:
    """A dataclass field with the metadata the validator, the console form and the docs read."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "unit": unit}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """GPT-2 architecture (the 124M model: 12 layers, 12 heads, 768 wide, 1024 context)."""
    n_layer: int = _f(12, "Number of transformer blocks.", min=1)
    n_head: int = _f(12, "Attention heads per block; must divide n_embd.", min=1)
    n_embd: int = _f(768, "Width of the residual stream (embedding size).", min=1)
    block_size: int = _f(1024, "Context length in tokens (sequence length T of every batch).", min=2, unit="tokens")
    vocab_size: int = _f(50304, "Embedding rows: the GPT-2 BPE's 50257 tokens padded to a multiple of 128 "
                                "so the head matmul runs on friendly shapes.", min=GPT2_VOCAB)


@dataclass
class DataConfig:
    """Where training tokens come from. Shards are uint16 .npy files; shard 0 is validation."""
    source: str = _f("fineweb-edu", "Corpus: 'embedded' (Python's own documentation, ships with Python, no "
                                    "download), 'shakespeare' (Tiny Shakespeare), 'fineweb-edu' (sample-10BT via "
                                    "the `datasets` extra), or 'files' (your own text/JSONL files).",
                     choices=("embedded", "shakespeare", "fineweb-edu", "files"))
    path: str = _f("", "Local input: for 'files' a file, directory or glob of .txt/.jsonl; for 'shakespeare' a "
                       "local copy instead of downloading. Empty = download where the source allows.")
    shard_dir: str = _f("", "Where the token shards are written and read. Empty = <cache_dir>/shards/<source>-<recipe "
                            "hash>, one directory per corpus and preparation settings.")
    cache_dir: str = _f("~/.cache/gpt-console", "Cache for downloads (Tiny Shakespeare, HellaSwag) and shards.")
    shard_tokens: int = _f(100_000_000, "Tokens per shard file when preparing data.", min=1024, unit="tokens")
    val_fraction: float = _f(0.05, "Share of a small corpus's documents put in the validation shard (shard 0). "
                                   "Streamed corpora (fineweb-edu) use their first shard instead.", min=0.0, max=0.5)
    max_tokens: int = _f(0, "Stop preparing after this many tokens (0 = the whole corpus).", min=0, unit="tokens")
    shuffle: bool = _f(True, "Visit training shards and their windows in a seeded order that changes every epoch "
                             "(resumable). Off = plain sequential order, as in build-nanogpt.")


@dataclass
class OptimConfig:
    """AdamW and the batch. One optimizer step sees total_batch_size tokens across all ranks."""
    total_batch_size: int = _f(524_288, "Tokens per optimizer step, summed over ranks and gradient-accumulation "
                                        "micro-steps. Must be a multiple of micro_batch_size × block_size × world size.",
                               min=1, unit="tokens")
    micro_batch_size: int = _f(64, "Sequences per rank per forward/backward (B). Lower it if memory runs out; "
                                   "gradient accumulation keeps the step size.", min=1, unit="sequences")
    max_lr: float = _f(6e-4, "Peak learning rate, reached at the end of warmup.", min=0.0)
    min_lr_ratio: float = _f(0.1, "Final learning rate as a fraction of max_lr.", min=0.0, max=1.0)
    weight_decay: float = _f(0.1, "AdamW weight decay, applied to 2-D weights only (not biases or LayerNorms).",
                             min=0.0)
    beta1: float = _f(0.9, "AdamW beta1.", min=0.0, max=0.999999)
    beta2: float = _f(0.95, "AdamW beta2.", min=0.0, max=0.999999)
    eps: float = _f(1e-8, "AdamW epsilon.", min=0.0)
    grad_clip: float = _f(1.0, "Clip the global gradient norm to this value (0 = no clipping; the norm is "
                               "reported either way).", min=0.0)
    max_bad_steps: int = _f(5, "A step whose loss or gradient norm is NaN/inf is skipped (no update) with an "
                               "alert; this many in a row stop the run as failed, keeping the last finite weights.",
                            min=1, max=1_000_000, unit="steps")
    spike_window: int = _f(100, "Steps of recent loss a spike is judged against (their median and spread); "
                                "0 = no spike alerts.", min=0, max=100_000, unit="steps")
    spike_threshold: float = _f(6.0, "A loss more than this many robust standard deviations (1.4826 × MAD) above "
                                     "the recent median raises a spike alert.", min=1.0, max=1e6)
    fused: str = _f("auto", "Fused AdamW kernel: 'auto' uses it where the device supports it (CUDA, and CPUs: "
                                 "one pass over the weights instead of several, ~3.5× faster there).",
                    choices=("auto", "on", "off"))


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: linear warmup, then decay to max_lr × min_lr_ratio at max_steps."""
    kind: str = _f("cosine", "Decay after warmup: 'cosine' (GPT-2/3), 'linear', or 'constant' (no decay).",
                   choices=("cosine", "linear", "constant"))
    warmup_steps: int = _f(715, "Steps of linear warmup from max_lr/warmup_steps to max_lr.", min=0, unit="steps")
    max_steps: int = _f(19073, "Optimizer steps in the run (19073 × 2^19 tokens ≈ 10B tokens).", min=1,
                        unit="steps")


@dataclass
class EvalConfig:
    """Validation loss and HellaSwag. Both also run at the last step."""
    every: int = _f(250, "Validation loss every N steps (0 = only at the end).", min=0, unit="steps")
    val_steps: int = _f(20, "Micro-batches per rank averaged for one validation loss.", min=1)
    hellaswag_every: int = _f(250, "HellaSwag every N steps (0 = never).", min=0, unit="steps")
    hellaswag_examples: int = _f(0, "HellaSwag examples per evaluation, split across ranks (0 = all 10,042).",
                                 min=0)
    hellaswag_path: str = _f("", "Local hellaswag_val.jsonl or .jsonl.gz. Empty = download the official file "
                                 "into <data.cache_dir> (kept if it has the official file's shape: "
                                 "10,042 examples).")


@dataclass
class SampleConfig:
    """Generated text, to watch the model learn."""
    every: int = _f(250, "Generate samples every N steps (0 = only at the end).", min=0, unit="steps")
    prompt: str = _f("Hello, I'm a language model,", "Prompt the samples continue.")
    count: int = _f(4, "Samples per round.", min=1)
    max_tokens: int = _f(32, "New tokens per sample.", min=1, unit="tokens")
    top_k: int = _f(50, "Sample among the k most likely tokens.", min=1)
    temperature: float = _f(1.0, "Softmax temperature (lower = more conservative).", min=1e-6)
    seed: int = _f(42, "Sampling seed, fixed so the same step gives the same text.", min=0)


@dataclass
class CheckpointConfig:
    """Checkpoints: model, optimizer, step, data position and RNG, written atomically."""
    every: int = _f(5000, "Checkpoint every N steps (0 = only at the end or when stopped).", min=0, unit="steps")
    keep_last: int = _f(3, "Keep the newest N checkpoints and delete older ones.", min=1)
    resume: str = _f("never", "'auto' continues from the newest complete checkpoint in the run directory; "
                              "'never' starts fresh (and refuses to overwrite existing checkpoints).",
                     choices=("never", "auto"))


@dataclass
class SystemConfig:
    """Device, precision, speed switches and bookkeeping."""
    device: str = _f("auto", "'auto' (accelerator if any, else CPU), 'cpu', 'cuda', 'cuda:N', 'mps' or 'xpu'.")
    dtype: str = _f("auto", "Autocast dtype. 'auto' = bfloat16 on CUDA with bf16 and on CPUs with "
                            "AVX512-BF16 or AMX, float32 elsewhere.", choices=("auto", "float32", "bfloat16"))
    compile: bool = _f(False, "torch.compile the model for training (evaluation and sampling keep working).")
    tf32: bool = _f(True, "Allow TF32 matmuls on CUDA.")
    seed: int = _f(1337, "Seed for weights and data order (same seed ⇒ same run).", min=0)
    threads: int = _f(0, "torch.set_num_threads per rank (0 = leave it to OMP_NUM_THREADS).", min=0)
    log_every: int = _f(1, "Emit a step event every N steps.", min=1, unit="steps")
    heartbeat_seconds: float = _f(10.0, "Heartbeat interval, so a follower can tell a slow run from a dead one.",
                                  min=0.5, unit="s")
    metrics_seconds: float = _f(10.0, "System metrics interval: a `system` event with every rank's CPU, memory "
                                      "and GPU figures (0 = off). Sampled off the training thread.",
                                min=0.0, unit="s")


@dataclass
class LogConfig:
    """Live mirrors of the event log in other tools' formats (written by rank 0, off the training thread)."""
    tensorboard: bool = _f(False, "Mirror metrics and samples into <run dir>/tensorboard/ as the run goes "
                                  "(`tensorboard --logdir` it; needs the tensorboard package, else a warning).")


@dataclass
class LaunchConfig:
    """How the console launches the trainer with torchrun."""
    backend: str = _f("local", "'local' runs torchrun on this machine; 'slurm' submits a batch job that runs one "
                               "torchrun per node (see the [slurm] table).", choices=("local", "slurm"))
    trainer: str = _f("train", "'train' (modular trainer) or 'onefile' (the one-file twin).",
                      choices=("train", "onefile"))
    nproc_per_node: int = _f(1, "Processes (ranks) per machine; usually one per GPU.", min=1)
    nnodes: int = _f(1, "Machines in the job. Above 1, set rdzv_endpoint and rdzv_id and launch on every node.",
                     min=1)
    rdzv_endpoint: str = _f("", "host:port of the rendezvous for multi-node runs.")
    rdzv_id: str = _f("", "Job id shared by all nodes of a multi-node run.")
    omp_num_threads: int = _f(0, "OMP_NUM_THREADS per rank (0 = CPU cores ÷ nproc_per_node).", min=0)
    env: dict = _f({}, "Extra environment variables for the trainer, e.g. { NCCL_DEBUG = \"WARN\" }.")


@dataclass
class SlurmConfig:
    """Slurm job settings, used when launch.backend = "slurm": nodes = launch.nnodes, ranks per node =
    launch.nproc_per_node. The run directory must be on a filesystem every node sees."""
    partition: str = _f("", "Partition (queue) to submit to; empty = the cluster's default.")
    account: str = _f("", "Account to charge; empty = your default account.")
    time_limit: str = _f("", "Wall-clock limit, e.g. \"02:00:00\" or \"1-00:00:00\"; empty = the partition's.")
    gpus_per_node: int = _f(0, "GPUs to request per node (0 for CPU jobs); launch.nproc_per_node must match.",
                            min=0, max=64)
    cpus_per_task: int = _f(0, "CPU cores per node for its torchrun and ranks (0 = Slurm's default).",
                            min=0, max=4096)
    stop_signal_seconds: int = _f(120, "Ask Slurm for SIGTERM this long before the time limit, so the trainer "
                                       "checkpoints and stops cleanly instead of being killed.",
                                  min=0, max=3600, unit="s")
    rdzv_port: int = _f(29500, "TCP port of the c10d rendezvous on the job's first node.", min=1024, max=65535)
    sbatch: dict = _f({}, "Extra #SBATCH options, e.g. { qos = \"high\", exclusive = \"\" } "
                          "(an empty value writes the bare flag).")
    setup: str = _f("", "Shell line run on each node before torchrun, e.g. \"source ~/venv/bin/activate\".")
    python: str = _f("", "Python on the nodes; empty = the interpreter that submits the job.")


@dataclass
class TrainingConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    log: LogConfig = field(default_factory=LogConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    @property
    def world_size(self) -> int:
        """Ranks the [launch] table asks for (the trainer checks it against the real world size)."""
        return self.launch.nproc_per_node * self.launch.nnodes


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainingConfig))


# --------------------------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class ConfigProblem:
    key: str      # dotted key, e.g. "optim.total_batch_size" (or "" for the whole file)
    reason: str   # what is wrong
    fix: str = ""  # what to do about it

    def __str__(self) -> str:
        where = self.key or "config"
        return f"{where}: {self.reason}" + (f" — {self.fix}" if self.fix else "")


class ConfigError(UserError, ValueError):
    """Raised with every problem found, so the user fixes them all in one go."""

    def __init__(self, problems: Iterable[ConfigProblem], source: str = ""):
        self.problems = list(problems)
        self.source = source
        head = f"invalid config {source}".rstrip() + ":"
        super().__init__("\n".join([head] + [f"  {p}" for p in self.problems]))


# ------------------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class FieldSpec:
    section: str
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None
    min: float | None
    max: float | None
    unit: str

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def _section_class(section: str) -> type:
    return {f.name: f.default_factory for f in dataclasses.fields(TrainingConfig)}[section]  # type: ignore


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}


def config_schema() -> list[FieldSpec]:
    """Every key in file order, with type, default, help, choices and bounds (drives form, docs, checks)."""
    specs = []
    for section in SECTIONS:
        cls = _section_class(section)
        instance = cls()
        for f in dataclasses.fields(cls):
            typ = _TYPES[f.type] if isinstance(f.type, str) else f.type
            m = f.metadata
            lo, hi = LIMITS.get(f"{section}.{f.name}", (None, None))  # config_limits.py: bounds for every key
            specs.append(FieldSpec(section, f.name, typ, getattr(instance, f.name), m["help"], m["choices"],
                                   lo if m["min"] is None else m["min"] if lo is None else max(lo, m["min"]),
                                   m["max"] if m["max"] is not None else hi, m["unit"]))
    return specs


def section_help(section: str) -> str:
    return (_section_class(section).__doc__ or "").strip()


_SPECS = {s.key: s for s in config_schema()}


# ---------------------------------------------------------------------------------------- building
def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a table"}.get(t, t.__name__)


def check_value(spec: FieldSpec, value: Any) -> tuple[Any, ConfigProblem | None]:
    """Coerce/validate one value against its spec; returns (value, problem)."""
    t = spec.type
    ok = (isinstance(value, bool) if t is bool else
          isinstance(value, int) and not isinstance(value, bool) if t is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if t is float else
          isinstance(value, t))
    if not ok:
        return value, ConfigProblem(spec.key, f"expected {_type_name(t)}, got {value!r}",
                                    f"e.g. {spec.key.split('.')[1]} = {_toml_value(spec.default)}")
    if t is int and not -INT64_MAX - 1 <= value <= INT64_MAX:
        return value, ConfigProblem(spec.key, f"{value} does not fit a 64-bit integer",
                                    f"use at most {_bound(spec.max if spec.max is not None else INT64_MAX)}")
    if t is float:
        try:
            value = float(value)
        except OverflowError:  # an integer too big for a float
            value = math.inf
        if not math.isfinite(value):
            return value, ConfigProblem(spec.key, f"{value} is not a finite number",
                                        f"e.g. {spec.key.split('.')[1]} = {_toml_value(spec.default)}")
    if t is dict:
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        if bad:
            return value, ConfigProblem(spec.key, f"values must be strings (see {', '.join(bad)})",
                                        'quote them, e.g. NCCL_DEBUG = "WARN"')
    if any("\0" in text for text in _texts(value)):  # a NUL cuts a path or an argument short in the OS
        return value, ConfigProblem(spec.key, "contains a NUL character (\\u0000)", "remove it")
    if spec.choices and value not in spec.choices:
        close = difflib.get_close_matches(str(value), spec.choices, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return value, ConfigProblem(spec.key, f"'{value}' is not one of {', '.join(spec.choices)}",
                                    f"{hint}choose one of {', '.join(spec.choices)}")
    if spec.min is not None and value < spec.min:
        return value, ConfigProblem(spec.key, f"{value} is below the minimum {_bound(spec.min)}",
                                    "it must be above 0, e.g. 1e-8" if 0 < spec.min < 1e-20 else
                                    f"use {_bound(spec.min)} or more")
    if spec.max is not None and value > spec.max:
        return value, ConfigProblem(spec.key, f"{value} is above the maximum {_bound(spec.max)}",
                                    f"use at most {_bound(spec.max)}")
    return value, None


def _bound(x: float) -> str:
    """A bound as the user would type it: 1_048_576, 0.5, 1e+300."""
    return _toml_value(int(x)) if float(x).is_integer() and abs(x) < 1e19 else f"{x:g}"


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(k) for k in value] + [v for v in value.values() if isinstance(v, str)]
    return []


def _unknown(key: str, candidates: Iterable[str], what: str) -> ConfigProblem:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(candidates), n=1)
    fix = f"did you mean '{close[0]}'?" if close else f"known {what}: {', '.join(sorted(candidates))}"
    return ConfigProblem(key, f"unknown {what[:-1] if what.endswith('s') else what}", fix)


def config_from_dict(data: dict[str, Any], source: str = "") -> TrainingConfig:
    """Build and validate a config from parsed TOML. Raises ConfigError listing every problem."""
    problems: list[ConfigProblem] = []
    sections: dict[str, Any] = {}
    for name, table in data.items():
        if name not in SECTIONS:
            problems.append(_unknown(name, SECTIONS, "sections"))
            continue
        if not isinstance(table, dict):
            problems.append(ConfigProblem(name, "expected a [section] table", f"write it as [{name}]"))
            continue
        cls = _section_class(name)
        names = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for key, value in table.items():
            spec = _SPECS.get(f"{name}.{key}")
            if spec is None:
                problems.append(_unknown(f"{name}.{key}", names, "keys"))
                continue
            value, problem = check_value(spec, value)
            if problem:
                problems.append(problem)
            else:
                values[key] = value
        sections[name] = cls(**values)
    cfg = TrainingConfig(**sections)
    problems += validate_config(cfg)
    if problems:
        raise ConfigError(problems, source)
    return cfg


def validate_config(cfg: TrainingConfig) -> list[ConfigProblem]:
    """Rules that tie keys together. Field-level checks happen while building."""
    p: list[ConfigProblem] = []
    m, o, s, lc = cfg.model, cfg.optim, cfg.schedule, cfg.launch
    if m.n_embd % m.n_head:
        p.append(ConfigProblem("model.n_embd", f"{m.n_embd} is not divisible by model.n_head = {m.n_head}",
                               f"use a multiple of {m.n_head}, e.g. {m.n_head * max(1, m.n_embd // m.n_head)}"))
    per_step = o.micro_batch_size * m.block_size * cfg.world_size
    if per_step and o.total_batch_size % per_step:
        lo = max(per_step, o.total_batch_size // per_step * per_step)
        p.append(ConfigProblem(
            "optim.total_batch_size",
            f"{o.total_batch_size} tokens is not a multiple of micro_batch_size × block_size × world size = "
            f"{o.micro_batch_size} × {m.block_size} × {cfg.world_size} = {per_step}",
            f"use {lo} or {lo + per_step}, or change micro_batch_size"))
    if s.warmup_steps > s.max_steps:
        p.append(ConfigProblem("schedule.warmup_steps", f"{s.warmup_steps} is more than schedule.max_steps = "
                               f"{s.max_steps}", "shorten the warmup or train longer"))
    if cfg.sample.max_tokens >= m.block_size:
        p.append(ConfigProblem("sample.max_tokens", f"{cfg.sample.max_tokens} new tokens do not fit the "
                               f"{m.block_size}-token context", f"use fewer than {m.block_size}"))
    if cfg.sample.top_k > m.vocab_size:
        p.append(ConfigProblem("sample.top_k", f"{cfg.sample.top_k} exceeds model.vocab_size", "lower it"))
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?", cfg.system.device):
        p.append(ConfigProblem("system.device", f"'{cfg.system.device}' is not a device",
                               "use auto, cpu, cuda, cuda:N, mps or xpu"))
    p += _slurm_problems(cfg)
    if lc.nnodes > 1 and lc.backend == "local" and not (lc.rdzv_endpoint and lc.rdzv_id):
        p.append(ConfigProblem("launch.rdzv_endpoint", "a multi-node run needs a rendezvous endpoint and id",
                               'set rdzv_endpoint = "host:29500" and rdzv_id = "some-job"'))
    if cfg.data.source == "files" and not cfg.data.path:
        p.append(ConfigProblem("data.path", "source 'files' needs the files to read",
                               'set path = "my_corpus/*.txt" (a file, directory or glob)'))
    bad_env = [k for k in lc.env if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
    if bad_env:
        p.append(ConfigProblem("launch.env", f"not an environment variable name: {', '.join(bad_env)}"))
    return p


def _slurm_problems(cfg: TrainingConfig) -> list[ConfigProblem]:
    """The [slurm] table's rules; they apply only to runs submitted to Slurm."""
    sl, lc = cfg.slurm, cfg.launch
    if lc.backend != "slurm":
        return []
    p: list[ConfigProblem] = []
    if sl.gpus_per_node and lc.nproc_per_node != sl.gpus_per_node:
        p.append(ConfigProblem("launch.nproc_per_node", f"{lc.nproc_per_node} ranks per node but the job asks "
                               f"for slurm.gpus_per_node = {sl.gpus_per_node} GPUs",
                               f"one rank per GPU: set nproc_per_node = {sl.gpus_per_node}"))
    if sl.time_limit and not re.fullmatch(r"(\d+-)?\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE", sl.time_limit):
        p.append(ConfigProblem("slurm.time_limit", f"'{sl.time_limit}' is not a Slurm time",
                               'use minutes, "HH:MM:SS" or "D-HH:MM:SS", e.g. "02:00:00"'))
    for key in ("partition", "account"):
        value = getattr(sl, key)
        if value and not re.fullmatch(r"[A-Za-z0-9_.,-]+", value):
            p.append(ConfigProblem(f"slurm.{key}", f"'{value}' is not a Slurm {key} name",
                                   "letters, digits, '_', '-', '.' and ',' only"))
    bad = [k for k, v in sl.sbatch.items() if not re.fullmatch(r"[a-z][a-z0-9-]*", k) or "\n" in v]
    if bad:
        p.append(ConfigProblem("slurm.sbatch", f"not an sbatch option: {', '.join(bad)}",
                               'use long option names without dashes, e.g. { qos = "high" }'))
    if "\n" in sl.setup or "\n" in sl.python or "\0" in sl.setup + sl.python:
        p.append(ConfigProblem("slurm.setup", "must be a single line", "join commands with &&"))
    return p


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.max_lr=3e-4' -> ('optim.max_lr', 0.0003). Values are TOML; bare words are strings."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or "." not in key:
        raise ConfigError([ConfigProblem(key or text, "an override looks like section.key=value",
                                         "e.g. --set optim.max_lr=3e-4")], "(--set)")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # unquoted strings: --set data.source=shakespeare
    return key, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of the parsed TOML with each override set (later ones win)."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for text in overrides:
        key, value = parse_override(text)
        section, _, name = key.partition(".")
        if not isinstance(merged.get(section, {}), dict):
            merged[section] = {}  # a non-table in the file: the override replaces it
        if "." in name:  # e.g. launch.env.FOO=bar
            name, _, sub = name.partition(".")
            spec = _SPECS.get(f"{section}.{name}")
            table = merged.setdefault(section, {}).setdefault(name, {})
            if (spec is not None and spec.type is not dict) or not isinstance(table, dict):
                example = _toml_value(spec.default) if spec is not None else "..."
                raise ConfigError([ConfigProblem(key, f"{section}.{name} is not a table, so it has no key '{sub}'",
                                                 f"e.g. --set {section}.{name}={example}")], "(--set)")
            table[sub] = value
            continue
        merged.setdefault(section, {})[name] = value
    return merged


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes a ConfigError naming the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", f"no such file: {path}", "check the path (presets live in configs/)")],
                          str(path)) from None
    return parse_toml_text(text, str(path))


def parse_toml_text(text: str, source: str = "") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([ConfigProblem("", f"TOML syntax error: {e}", "fix the line it names")], source) from None


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> TrainingConfig:
    """Defaults <- TOML file <- overrides, validated. Raises ConfigError with every problem found."""
    data = read_toml(path) if path else {}
    return config_from_dict(apply_overrides(data, overrides), str(path or ""))


def config_to_dict(cfg: TrainingConfig) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


# ------------------------------------------------------------------------------------------ writing
_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:_}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        # TOML basic strings take no raw control characters: each is written as an escape, so any string the
        # validator accepted (a prompt with a tab or a \x0e in it) reads back as itself.
        return '"' + "".join(_TOML_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c)
                             for c in v) + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"cannot write {v!r} as TOML")


def config_to_toml(cfg: TrainingConfig, *, comments: bool = True, header: str = "") -> str:
    """The resolved config as TOML (saved beside every run); each key with its help as a comment."""
    lines = [f"# {line}" for line in header.splitlines()] + ([""] if header else [])
    data = config_to_dict(cfg)
    for section in SECTIONS:
        if comments:
            lines += [f"# {line.strip()}" for line in section_help(section).splitlines()]  # multi-line docs
        lines.append(f"[{section}]")
        for name, value in data[section].items():
            if comments:
                lines.append(f"# {_SPECS[f'{section}.{name}'].help}")
            lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ derived
def grad_accum_steps(cfg: TrainingConfig, world_size: int | None = None) -> int:
    world = cfg.world_size if world_size is None else world_size
    return cfg.optim.total_batch_size // (cfg.optim.micro_batch_size * cfg.model.block_size * world)


def parameter_count(cfg: TrainingConfig, *, include_position: bool = True) -> int:
    """Exact parameter count of the GPT-2 model (tied head counted once), by arithmetic."""
    c, L, v, t = cfg.model.n_embd, cfg.model.n_layer, cfg.model.vocab_size, cfg.model.block_size
    per_block = (2 * c) + (c * 3 * c + 3 * c) + (c * c + c) + (2 * c) + (c * 4 * c + 4 * c) + (4 * c * c + c)
    return v * c + (t * c if include_position else 0) + L * per_block + 2 * c


def flops_per_token(cfg: TrainingConfig) -> int:
    """Training FLOPs per token, 6N + 12·L·T·C (PaLM appendix B; N without position embeddings)."""
    m = cfg.model
    return 6 * parameter_count(cfg, include_position=False) + 12 * m.n_layer * m.block_size * m.n_embd


def derived_figures(cfg: TrainingConfig) -> dict[str, Any]:
    """What the console's derived panel shows; pure arithmetic, no torch."""
    n = parameter_count(cfg)
    world = cfg.world_size
    return {
        "parameters": n,
        "world_size": world,
        "tokens_per_step": cfg.optim.total_batch_size,
        "tokens_per_micro_step": cfg.optim.micro_batch_size * cfg.model.block_size,
        "grad_accum_steps": grad_accum_steps(cfg) if cfg.optim.total_batch_size % (
            cfg.optim.micro_batch_size * cfg.model.block_size * world) == 0 else None,
        "total_tokens": cfg.optim.total_batch_size * cfg.schedule.max_steps,
        "flops_per_token": flops_per_token(cfg),
        # fp32 weights + grads + AdamW's two moments, per rank (activations come on top).
        "state_bytes_per_rank": 16 * n,
    }
