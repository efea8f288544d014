"""Runs: directories that outlive the console, the launcher that starts them, and their status.

A run is a directory under a runs root (default ``./runs``, or ``$GPT_CONSOLE_RUNS``), named by a readable,
sortable id such as ``20261123-221500-default``; created 0700, its files 0600 (see channel/layout.py for what
lives inside). Stdlib only — the console imports this and must start fast without torch.

Public API (everything the console and the CLI use):

    store = RunStore("runs")                       # root is created 0700 on first write
    store.list() -> list[Run]                      # newest first
    store.get("2026112") -> Run                    # exact id or unique prefix; RunNotFound / AmbiguousRun
    store.delete(ref)                              # refuses a running run (RunIsRunning)
    run = store.launch(config_path="configs/default.toml", overrides=["optim.max_lr=3e-4"])
    run = store.launch(toml_text=edited_text, name="my-experiment")   # from the console's editor buffer
                                                   # both raise ConfigError (bad config) / LaunchError

    run.id, run.dir, run.config_file, run.events_file, run.log_file
    run.status() -> RunStatus                      # running / finished / failed / stopped / lost / created
    run.is_running() -> bool
    run.summary() -> RunSummary                    # folded from the whole event log (tui_trainer.channel)
    run.follower(offset=0) -> EventFollower        # replay then tail the event log
    run.launch_info() -> dict | None               # launch.json (argv, pids, host, user, start time, ...)
    run.checkpoints() -> list[Path]                # complete checkpoints, oldest first
    run.log_tail(lines=40) -> list[str]            # end of logs/trainer.log
    run.config() -> TrainingConfig                 # the run's config.toml, validated
    run.stop(timeout=120.0) -> RunStatus           # graceful (trainer checkpoints), then SIGKILL, no orphans
    run.resume() -> Run                            # relaunch with --resume into the same dir (RunIsRunning)
    run.control("sample", prompt="Once", timeout=60) -> dict   # the control_ack event; ControlTimeout /
                                                   # RunNotRunning
    run.send_control("checkpoint") -> str          # fire and forget; returns the request id

    RunStatus(state, reason, exit_code, step, ended_at, source); .final; .label (e.g. "failed (exit 1)")

Lower level, for tests and tools: ``launcher.torchrun_argv(cfg, run_dir, resume=...)``,
``launcher.trainer_env(cfg, run_dir)``, ``status.derive_status(run_dir)``, ``procs`` (/proc helpers),
``export.write_csv(run, file)``, ``progress.progress_line(summary)``.

How status stays right when nobody watches: every launch starts a small supervisor process
(``python -m tui_trainer.runs.supervisor``, own session) that starts torchrun, records the pids of torchrun and
its workers with their kernel start times in launch.json, waits, cleans up any straggler worker, and writes
status.json with the exit code and reason. If the supervisor itself was killed, status is derived from the
events, launch.json and /proc (a pid counts as alive only if its start time and the machine's boot id match, so
pid reuse and reboots cannot fool it).
"""

from __future__ import annotations

from tui_trainer.runs.errors import (AmbiguousRun, ControlTimeout, LaunchError, RunError, RunIsRunning,
                                     RunNotFound, RunNotRunning)
from tui_trainer.runs.status import RunStatus, derive_status
from tui_trainer.runs.store import Run, RunStore, default_runs_root

__all__ = [
    "AmbiguousRun", "ControlTimeout", "LaunchError", "Run", "RunError", "RunIsRunning", "RunNotFound",
    "RunNotRunning", "RunStatus", "RunStore", "default_runs_root", "derive_status",
]
