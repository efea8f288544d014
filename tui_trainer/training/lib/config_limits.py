"""Upper (and a few lower) bounds for config keys whose field declares none, so every number the validator
accepts is one the trainer can run: it fits a signed 64-bit integer, and it is not absurd for a GPT-2 trainer.

``config.config_schema`` merges these into each ``FieldSpec``; a bound written on the field itself wins. The
limits are generous on purpose: they refuse values that can only overflow, hang or exhaust memory (the memory
estimate in ``memory_check.py`` judges the sizes that are merely too big for *this* machine). Stdlib only.
"""

from __future__ import annotations

INT64_MAX = 2**63 - 1
STEPS_MAX = 10**12  # a step count or interval beyond any run (a million years of 30 ms steps)
FLOAT_TINY = 1e-30  # "strictly positive": the smallest value accepted where zero would divide by zero

# key -> (min or None to keep the field's, max)
LIMITS: dict[str, tuple[float | None, float]] = {
    # Model shape: GPT-3 175B is 96 × 12288 with 96 heads; anything far beyond cannot be allocated anyway.
    "model.n_layer": (None, 1024),
    "model.n_head": (None, 1024),
    "model.n_embd": (None, 65536),
    "model.block_size": (None, 1 << 20),
    # Shards store tokens as uint16; a table far above the 50257 BPE tokens only wastes memory.
    "model.vocab_size": (None, 1 << 20),
    "data.shard_tokens": (None, 1 << 34),
    "data.max_tokens": (None, 1 << 50),
    "optim.total_batch_size": (None, 1 << 40),
    "optim.micro_batch_size": (None, 1 << 20),
    # AdamW hands lr (and lr × weight_decay) to its kernels as float32, whose largest value is ~3.4e38.
    "optim.max_lr": (None, 1e30),
    "optim.weight_decay": (None, 1e6),
    # AdamW divides by sqrt(v) + eps: eps = 0 (or -0.0) turns a zero second moment into 0/0 = NaN weights.
    "optim.eps": (FLOAT_TINY, 1.0),
    "optim.grad_clip": (None, 1e30),
    "schedule.warmup_steps": (None, STEPS_MAX),
    "schedule.max_steps": (None, STEPS_MAX),
    "eval.every": (None, STEPS_MAX),
    # An evaluation runs between two stop checks (SIGTERM waits for it): keep it to minutes, not days.
    "eval.val_steps": (None, 10_000),
    "eval.hellaswag_every": (None, STEPS_MAX),
    "eval.hellaswag_examples": (None, 10_000_000),
    "sample.every": (None, STEPS_MAX),
    "sample.count": (None, 1024),
    "sample.max_tokens": (None, 1 << 20),
    "sample.top_k": (None, 1 << 20),
    "sample.temperature": (None, 1e6),
    # torch.manual_seed / Generator.manual_seed take at most 64 bits.
    "sample.seed": (None, INT64_MAX),
    "system.seed": (None, INT64_MAX),
    "checkpoint.every": (None, STEPS_MAX),
    "checkpoint.keep_last": (None, 1_000_000),
    "system.threads": (None, 4096),
    "system.log_every": (None, STEPS_MAX),
    "system.heartbeat_seconds": (None, 86_400.0),
    "system.metrics_seconds": (None, 86_400.0),
    "launch.nproc_per_node": (None, 1024),
    "launch.nnodes": (None, 100_000),
    "launch.omp_num_threads": (None, 4096),
}
