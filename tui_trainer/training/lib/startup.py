"""Set-up steps of the modular trainer that are about ranks agreeing, not about training: one rank computes
and all get the result, shards prepared by one rank per machine while the others wait, HellaSwag present on
all ranks or none, the optional profiler."""

from __future__ import annotations

import sys
import time
from pathlib import Path


class PreparationStopped(Exception):
    """SIGTERM/SIGINT arrived while the data was being prepared (nothing half-written is kept)."""


def from_rank0(ctx, compute):
    """Rank 0 computes; every rank gets the result (or rank 0's exception, so all ranks fail alike)."""
    result: list = [None, None]
    if ctx.is_master:
        try:
            result[0] = compute()
        except Exception as e:  # noqa: BLE001 - re-raised on every rank below
            result[1] = e
    if ctx.is_distributed:
        import torch.distributed as dist
        dist.broadcast_object_list(result, src=0)
    if result[1] is not None:
        raise result[1]
    return result[0]


def load_hellaswag_on_all_ranks(cfg, ctx, events):
    """Rank 0 reads the examples and every rank gets its outcome: all ranks have them or none has, so all
    enter run_hellaswag_eval's all-reduce together (a rank that skipped it would pair its next collective
    with the others' HellaSwag one, or hang them until the timeout)."""
    from .hellaswag import load_hellaswag

    def read() -> tuple[list | None, str]:
        try:
            return load_hellaswag(cfg), ""  # already cut to eval.hellaswag_examples
        except Exception as e:  # noqa: BLE001 - no data (offline, bad path) must not stop training
            return None, str(e)
    examples, problem = from_rank0(ctx, read)
    if problem:
        events.emit("log", level="warning", message=f"HellaSwag skipped for this run: {problem}")
    return examples


def prepare_shards(cfg, ctx, events, stop) -> None:
    """One preparer per machine (local rank 0; nodes need not share a filesystem), the others wait for it."""
    from .shards import ensure_shards
    if ctx.local_rank == 0:
        ensure_shards(cfg, progress=_prepare_reporter(events, stop))
    else:
        _wait_for_shards(cfg, stop)


def _wait_for_shards(cfg, stop) -> None:
    """Wait for this machine's local rank 0 to prepare the shards. A file poll, not a collective: preparing a
    large corpus can take longer than any collective timeout. If rank 0 fails, torchrun stops this rank."""
    from .shards import ensure_shards, list_shards, resolve_shard_dir
    shard_dir = resolve_shard_dir(cfg)
    while not (list_shards(shard_dir, "val") and list_shards(shard_dir, "train")):
        if stop.requested:
            raise PreparationStopped()
        time.sleep(0.5)
    ensure_shards(cfg)  # the same checks as rank 0's; returns at once


def _prepare_reporter(events, stop):
    """Progress of a first-time data preparation: a log event and a stderr line every few seconds. A stop
    request ends the preparation (its temp dir is removed) instead of waiting hours for it."""
    last = [0.0]

    def report(p) -> None:
        if stop.requested:
            raise PreparationStopped()
        if p.done or time.monotonic() - last[0] >= 5.0:
            last[0] = time.monotonic()
            message = (f"preparing {p.source} shards: {p.documents:,} documents, {p.tokens:,} tokens, "
                       f"{p.elapsed:.0f}s" + (" — done" if p.done else ""))
            events.emit("log", level="info", message=message)
            print(message, file=sys.stderr, flush=True)
    return report


def start_profiler(run_dir: Path):
    """torch.profiler over steps 2-4 (after a wait and a warm-up step), a TensorBoard trace in run_dir/profile."""
    import torch
    prof = torch.profiler.profile(
        schedule=torch.profiler.schedule(wait=1, warmup=1, active=3, repeat=1),
        on_trace_ready=torch.profiler.tensorboard_trace_handler(str(run_dir / "profile")), record_shapes=True)
    prof.start()
    return prof


def grad_accum_steps_for(cfg, world_size: int) -> int:
    """Micro-steps per optimizer step on the ranks actually running; a BatchSizeError (a user error) when
    optim.total_batch_size does not split into micro_batch_size × block_size × ranks."""
    from .errors import BatchSizeError
    per_micro_step = cfg.optim.micro_batch_size * cfg.model.block_size * world_size
    if cfg.optim.total_batch_size % per_micro_step:
        raise BatchSizeError(f"optim.total_batch_size = {cfg.optim.total_batch_size} is not a multiple of "
                             f"micro_batch_size × block_size × {world_size} ranks; change it or the number "
                             "of ranks.")
    return cfg.optim.total_batch_size // per_micro_step
