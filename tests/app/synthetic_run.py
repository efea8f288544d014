"""A fixed, synthetic run for snapshot tests: same id, same times, same figures on every machine.

Its id encodes a fixed start time; ``FROZEN_NOW`` is a fixed moment after it, so "age" columns do not move.
Times are shown in local time by the console: snapshot tests set TZ=UTC (``utc`` fixture) so they match
everywhere.
"""

from __future__ import annotations

import math

from console_events import EventLog

from tui_trainer.runs import Run, RunStore, ids

RUN_ID = "20260101-120000-synthetic-124m"
FAILED_ID = "20260101-090000-offline-tokenizer"
T0 = 1767268800.0           # 2026-01-01 12:00:00 UTC: the first event
STEPS = 120


def frozen_now() -> float:
    """Two hours after the synthetic run's id time (the id is read in local time, so ask the same code)."""
    return (ids.id_time(RUN_ID) or 0.0) + 7200.0


def _loss(n: int) -> float:
    return 3.2 + 7.8 * math.exp(-n / 25) + 0.05 * math.sin(n * 1.7)


def synthetic_run(store: RunStore, run_id: str = RUN_ID, steps: int = STEPS):
    """A finished 120-step run: steps with warmup + cosine LR, val and HellaSwag points, samples, logs."""
    run_dir = store.root / run_id
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    run = Run(run_dir)
    log = EventLog(t0=T0)
    log.add("run_start", 0.0, config={"sample": {"prompt": "Hello, I'm a language model,", "every": 40},
                                      "eval": {"hellaswag_path": "data/hellaswag_val.jsonl"}},
            trainer="train", params=124_439_808, world_size=2, device="cuda", device_name="NVIDIA H100",
            dtype="bfloat16", grad_accum_steps=4, max_steps=steps, start_step=0, resumed_from_step=None,
            peak_flops=989e12)
    for n in range(steps):
        cosine = 1 + math.cos(math.pi * (n - 10) / (steps - 10))
        lr = 6e-4 * (n + 1) / 10 if n < 10 else 6e-5 + 0.5 * (6e-4 - 6e-5) * cosine
        log.add("step", 1.5, step=n, loss=_loss(n), lr=lr, grad_norm=1.0 + 2.0 * math.exp(-n / 15), dt=1.5,
                tok_per_s=349_000.0 + 1000 * math.sin(n), tokens=(n + 1) * 524_288, mfu=0.42)
        if n % 20 == 19:
            log.add("val", 0.0, step=n + 1, loss=_loss(n) + 0.08)
        if n % 40 == 39:
            log.add("hellaswag", 0.0, step=n + 1, correct=0, correct_norm=50 + n // 8, total=200, acc=0.25,
                    acc_norm=(50 + n // 8) / 200)
            log.add("sample", 0.0, step=n + 1, prompt="Hello, I'm a language model,",
                    texts=[f" and I can write text at step {n + 1}.", " which is trained on the web."],
                    source="schedule")
        if n == 59:
            log.add("checkpoint", 0.0, step=60, path=str(run_dir / "checkpoints" / "step-00000060"),
                    reason="schedule")
    log.add("run_end", 0.0, status="finished", reason=f"reached max_steps = {steps}", step=steps)
    log.write(run.events_file)
    run.log_file.write_text("".join(f"step {n:6d} | loss {_loss(n):.4f}\n" for n in range(steps - 6, steps)))
    run.config_file.write_text("[model]\nn_layer = 12\n\n[schedule]\nmax_steps = 120\n")
    return run


OFFLINE_MESSAGE = (
    "The GPT-2 BPE (tiktoken 'gpt2': vocab.bpe and encoder.json) could not be loaded offline: the cached "
    "files are not in tiktoken's default cache /tmp/data-gym-cache (TIKTOKEN_CACHE_DIR is not set), and "
    "downloading them failed (ConnectionError: openaipublic.blob.core.windows.net is unreachable). Set "
    "TIKTOKEN_CACHE_DIR to a directory holding the cached files, or run once with network so tiktoken caches "
    "them (files: vocab.bpe, encoder.json).")


def failed_run(store: RunStore, run_id: str = FAILED_ID):
    """A run that failed while setting up (no step, no checkpoint), named and noted by its user."""
    run_dir = store.root / run_id
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    run = Run(run_dir)
    log = EventLog(t0=T0 - 10_800)
    log.add("run_start", 0.0, config={"sample": {"every": 250}}, trainer="train", params=124_439_808,
            world_size=1, device="cpu", device_name="CPU", dtype="float32", grad_accum_steps=8,
            max_steps=5000, start_step=0, resumed_from_step=None, peak_flops=None)
    log.add("log", 0.5, level="warning", message="HellaSwag skipped for this run: cannot download "
            "hellaswag_val.jsonl (offline); set eval.hellaswag_path to a local copy")
    log.add("error", 1.0, message=OFFLINE_MESSAGE, traceback="")
    log.add("run_end", 0.0, status="failed", reason=OFFLINE_MESSAGE[:300], step=0)
    log.write(run.events_file)
    run.log_file.write_text(OFFLINE_MESSAGE + "\n")
    run.config_file.write_text("[data]\nsource = \"fineweb-edu\"\n")
    (run_dir / "label.json").write_text('{"name": "offline try", "note": "first launch on the cluster node"}')
    return run
