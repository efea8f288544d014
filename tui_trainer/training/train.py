"""Train a GPT-2: ``python -m tui_trainer.training.train --config X.toml``, alone or under torchrun:

    torchrun --standalone --nproc_per_node=2 -m tui_trainer.training.train --config configs/default.toml

A thin entry over ``lib/``: arguments, set-up, the step loop, evaluation/sample/checkpoint scheduling, control
requests, events, teardown. Step numbers: a ``step`` event's ``step`` is the 0-based index of the step just
trained; every other event's ``step`` counts the steps done at that moment (val at step 0 = before training).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tui_trainer.channel.control import ControlInbox
from tui_trainer.channel.layout import ENV_EVENTS, ENV_RUN_DIR, checkpoint_root, events_path
from tui_trainer.channel.private_files import make_private_dir
from tui_trainer.channel.writer import EventWriter
from tui_trainer.training.lib.arguments import parse_args
from tui_trainer.training.lib.config import TrainingConfig, config_to_toml, load_config
from tui_trainer.training.lib.control_requests import FLAGS, handle_requests, wanted_flags
from tui_trainer.training.lib.errors import describe_failure
from tui_trainer.training.lib.signals import StopFlag, install_stop_handlers, set_parent_death_signal
from tui_trainer.training.lib.startup import (PreparationStopped, from_rank0, grad_accum_steps_for,
                                              load_hellaswag_on_all_ranks, prepare_shards, start_profiler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = Path(args.run_dir or os.environ.get(ENV_RUN_DIR) or f"runs/manual-{Path(args.config).stem}").absolute()
    stop = StopFlag()
    install_stop_handlers(stop)
    from tui_trainer.training.lib.distributed import setup_distributed, teardown_distributed, under_torchrun
    if under_torchrun():
        set_parent_death_signal()  # a SIGKILLed torchrun must not leave this worker training alone
    master = int(os.environ.get("RANK", "0")) == 0
    if master:
        make_private_dir(run_dir)  # 0700 whatever the umask of whoever started it (files: 0600)
    events = EventWriter(args.events or os.environ.get(ENV_EVENTS) or events_path(run_dir), enabled=master)
    ctx, progress, code = None, {"step": 0}, 1
    try:
        cfg = load_config(args.config, args.set)
        ctx = setup_distributed(cfg.system.device)
        code = train(cfg, ctx, run_dir, events, stop, args, progress)
    except PreparationStopped:
        events.emit("run_end", status="stopped", reason=f"{stop.reason} while preparing data", step=0)
        code = 0
    except Exception as e:  # noqa: BLE001 - every failure ends the run with an error + run_end event
        message, trace = describe_failure(e, run_dir)  # a user error: one paragraph and no traceback
        events.failure_reported = not trace  # that paragraph is printed below: the log writer must not repeat it
        events.emit("error", message=message, traceback=trace)
        events.emit("run_end", status="failed", reason=message.splitlines()[0][:300], step=progress["step"])
        if master or trace:
            print(trace or message, file=sys.stderr, flush=True)
        code = 1 if trace else 2
    finally:
        events.close()
        if ctx is not None:
            teardown_distributed(ctx)  # after train() returned, so no frame still holds the DDP model
    return code


def train(cfg: TrainingConfig, ctx, run_dir: Path, events: EventWriter, stop: StopFlag,
          args, progress: dict) -> int:
    import torch
    from tui_trainer.training import lib as L
    from tui_trainer.training.lib.checkpoint import gather_rng_states
    from tui_trainer.training.lib.evaluation import EvaluationStopped, NonFiniteOutput
    from tui_trainer.training.lib.health import HealthMonitor
    from tui_trainer.training.lib.memory_check import check_memory
    from tui_trainer.training.lib.rundir import checkpoint_to_resume, save_resolved_config
    from tui_trainer.training.lib.step import agree_with_figures, train_step, weights_finite
    from tui_trainer.training.lib.system_metrics import SystemMetrics

    world, master, device = ctx.world_size, ctx.is_master, ctx.device
    if device.type == "cpu":
        from tui_trainer.training.lib.cpu_memory import keep_freed_memory
        keep_freed_memory()  # big tensors reuse freed memory instead of page-faulting afresh every step
    accum = grad_accum_steps_for(cfg, world)  # a user error when the batch does not split over the ranks
    check_memory(cfg, device)  # before anything big is allocated: refuse a config that cannot fit
    if cfg.system.threads:
        torch.set_num_threads(cfg.system.threads)
    dtype, autocast = L.configure_precision(cfg.system.dtype, cfg.system.tf32, device)
    ckpt_root, cfg_dict, cfg_toml = checkpoint_root(run_dir), L.config_to_dict(cfg), config_to_toml(cfg)

    resume = args.resume or cfg.checkpoint.resume == "auto"
    resume_from = from_rank0(ctx, lambda: checkpoint_to_resume(ckpt_root, resume))
    if master:
        kept = save_resolved_config(run_dir, cfg_toml)
        if kept:
            events.emit("log", level="info", message=f"the run's previous config.toml is kept as {kept}")
    prepare_shards(cfg, ctx, events, stop)  # when the launcher has not already (python -m ... alone)
    enc = L.get_tokenizer()
    train_loader, val_loader = L.build_dataloaders(cfg, ctx.rank, world)

    torch.manual_seed(cfg.system.seed)  # identical initial weights on every rank
    raw_model = L.GPT(cfg.model).to(device)
    optimizer = L.configure_optimizer(raw_model, cfg, device.type)
    start, tokens, evals_done = 0, 0, False
    if resume_from is not None:
        state = L.load_checkpoint(resume_from, map_location="cpu")
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        train_loader.load_state_dict(state["data"])
        if ctx.rank < len(state["rng"]):
            L.restore_rng_state(state["rng"][ctx.rank], device)
        start, tokens, evals_done = state["step"], state["tokens"], state.get("evals_done", True)
        del state
    progress["step"] = start
    # DDP, then compile over it (so all-reduces overlap the backward); evaluation and sampling use raw_model.
    model = L.wrap_for_training(raw_model, ctx, compile=cfg.system.compile)
    hellaswag = load_hellaswag_on_all_ranks(cfg, ctx, events) if cfg.eval.hellaswag_every else None

    name = L.device_name(device)
    # Rank 0 reports MFU. On a CPU its first run measures the peak (~1 s, then cached): the others wait meanwhile.
    peak = L.peak_flops(name, device.type, dtype, cfg.system.tf32) if master else None
    L.barrier(ctx)
    events.emit("run_start", config=cfg_dict, trainer="train", params=L.parameter_count(cfg), world_size=world,
                device=str(device), device_name=name, dtype=str(dtype).removeprefix("torch."),
                grad_accum_steps=accum, max_steps=cfg.schedule.max_steps, start_step=start,
                resumed_from_step=start if resume_from is not None else None, peak_flops=peak)

    def evaluate(done: int, with_hellaswag: bool) -> None:  # EvaluationStopped once a stop arrives meanwhile
        loss = L.evaluate_loss(raw_model, val_loader, cfg.eval.val_steps, device, autocast, stop.is_set)
        events.emit("val", step=done, loss=loss)
        if master:
            print(f"step {done:6d} | val loss {loss:.4f}", flush=True)
        if with_hellaswag and hellaswag:
            result = L.run_hellaswag_eval(raw_model, hellaswag, device, autocast, ctx.rank, world,
                                          should_stop=stop.is_set)
            events.emit("hellaswag", step=done, **result)

    def sample(done: int, prompt: str, source: str) -> None:
        if master:  # sampling needs no other rank
            s = cfg.sample
            try:
                texts = L.generate_samples(raw_model, enc, prompt, s.count, s.max_tokens, s.top_k,
                                           s.temperature, s.seed, device, autocast)
            except NonFiniteOutput as e:  # a diverged model: say so, never crash the run over a sample
                events.emit("log", level="warning", message=f"step {done}: {e}")
                return
            events.emit("sample", step=done, prompt=prompt, texts=texts, source=source)

    def checkpoint(done: int, reason: str) -> None:
        rng = gather_rng_states(device)  # a collective: every rank's generators
        if master:
            path = L.save_checkpoint(ckpt_root, done, model=raw_model, optimizer=optimizer,
                                     data_state=train_loader.state_dict(), rng=rng, config=cfg_dict,
                                     config_toml=cfg_toml, tokens=tokens, evals_done=reason != "stop",
                                     keep_last=cfg.checkpoint.keep_last)
            events.emit("checkpoint", step=done, path=str(path), reason=reason)
        L.barrier(ctx)

    max_steps = cfg.schedule.max_steps

    def due(every: int, done: int) -> bool:
        return done == max_steps or (every > 0 and done % every == 0)

    inbox = ControlInbox(run_dir) if master else None
    fpt = L.flops_per_token(cfg)
    # Each rank samples on a thread; the figures ride in agree's all-reduce to rank 0 (system_metrics.py).
    system = SystemMetrics.start(cfg.system.metrics_seconds, ctx.rank, world, device, master=master)
    mirror = None
    if master and cfg.log.tensorboard:  # follows events.jsonl on its own thread (export/tensorboard_live.py)
        from tui_trainer.export.tensorboard_live import start_mirror
        mirror = start_mirror(run_dir, events.path, start_step=start, carry_evals=evals_done, events=events)
    status, reason = "finished", f"reached max_steps = {max_steps}"
    health, failure = HealthMonitor.from_config(cfg), ""  # diverging runs (lib/health.py), a lost event log
    profiler = start_profiler(run_dir) if args.profile and master else None
    done = start
    try:
        while True:
            if done > start or not evals_done:  # a checkpoint may have been saved after this step's evaluations
                if due(cfg.eval.every, done):
                    evaluate(done, with_hellaswag=cfg.eval.hellaswag_every > 0 and due(cfg.eval.hellaswag_every, done))
                if due(cfg.sample.every, done):
                    sample(done, cfg.sample.prompt, "final" if done == max_steps else "schedule")
            if done > start and due(cfg.checkpoint.every, done):
                checkpoint(done, "final" if done == max_steps else "schedule")
            if done == max_steps:
                break
            if time.time() - events.last_emit >= cfg.system.heartbeat_seconds:
                events.emit("heartbeat", step=done)

            t0 = time.time()
            lr = L.get_lr(done, cfg)
            loss_t, norm_t = train_step(model, raw_model, optimizer, train_loader, accum=accum, lr=lr,
                                        grad_clip=cfg.optim.grad_clip, device=device, autocast=autocast,
                                        distributed=ctx.is_distributed)
            requests = inbox.poll() if inbox else []
            vanished = bool(inbox) and not run_dir.is_dir()  # deleted under us: end, and write nothing back
            if vanished and not stop.requested:
                stop.set("run directory deleted")
            if master and events.write_failure and not stop.requested:  # no event log, no run: save it, fail
                stop.set(events.write_failure)
                failure = events.write_failure
            wanted = wanted_flags(requests, stop=stop.requested, vanished=vanished)
            loss, norm, agreed, figures = agree_with_figures(
                loss_t, norm_t, wanted, system.slots() if system else [], world_size=world,
                distributed=ctx.is_distributed)
            act = dict(zip(FLAGS, agreed))
            for alert in health.observe(done, loss, norm):  # agreed numbers: every rank reaches the same verdict
                events.emit("alert", **alert)
            if health.failure:
                act["stop"], failure = True, health.failure
                if not weights_finite(raw_model):  # nothing finite left to save: the newest checkpoint is the state
                    failure += "; the weights themselves are no longer finite, so no checkpoint was written"
            dt = time.time() - t0  # training only: evaluation, sampling and checkpoints happen outside t0..dt
            tokens += cfg.optim.total_batch_size
            done += 1
            progress["step"] = done
            if profiler:
                profiler.step()
            if (done - 1) % cfg.system.log_every == 0 or done == max_steps:
                tok_per_s = cfg.optim.total_batch_size / dt
                events.emit("step", step=done - 1, loss=loss, lr=lr, grad_norm=norm, dt=dt, tok_per_s=tok_per_s,
                            tokens=tokens, mfu=L.compute_mfu(fpt, tok_per_s, peak, world))
                if master:
                    print(f"step {done - 1:6d} | loss {loss:.4f} | lr {lr:.3e} | norm {norm:.3f} | "
                          f"dt {dt * 1000:.0f}ms | tok/s {tok_per_s:,.0f}", flush=True)
            if system:
                system.report(events, done, figures)

            # Control requests act here, at the step boundary, on every rank at once.
            handle_requests(requests, act, done, events, evaluate=evaluate, sample=sample, checkpoint=checkpoint,
                            prompt=cfg.sample.prompt,
                            save_on_stop=not act["vanished"] and "no checkpoint" not in failure)
            if act["stop"]:
                status = "failed" if failure else "stopped"
                reason = failure or stop.reason or "stop requested"
                break
    except EvaluationStopped as e:  # the same graceful stop, saved before this step's evaluations: a resume redoes them
        events.emit("log", level="info", message=str(e))
        checkpoint(done, "stop")
        status, reason = "stopped", stop.reason or "stop requested"
    if profiler:
        profiler.stop()
        events.emit("log", level="info", message=f"profiler trace written to {run_dir / 'profile'}")
    if system:
        system.stop()
    events.emit("run_end", status=status, reason=reason, step=done)
    if mirror:
        mirror.stop()  # after run_end: it writes what is left of this process's events
    if master:
        print(f"run {status} at step {done}: {reason}", flush=True,
              file=sys.stderr if status == "failed" else sys.stdout)
    return 1 if status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
