"""Start, stop and resume runs: torchrun under a small supervisor, in its own session, logging to files.

Process tree of one launch (all started with stdin=/dev/null, output appended to logs/trainer.log, umask 077):

    supervisor (python -m tui_trainer.runs.supervisor <run_dir>; session leader, survives the console/SSH)
      └─ torchrun (python -m tui_trainer.runs.loopback_torchrun ... on one node, its stores on 127.0.0.1;
         python -m torch.distributed.run ... across nodes; same process group as the supervisor)
           ├─ rank 0 (python -m tui_trainer.training.train ...; torchrun puts each rank in its own session)
           └─ rank 1 ...

config.toml: launched from a file without overrides, the run keeps your TOML text byte for byte (comments and
all; the trainer fills unset keys with the same defaults, and run_start records the resolved values). With
--set overrides, or from the console's editor, config.toml is the resolved config (config_to_toml, every key
with its help) and your original text is kept beside it as config.source.toml.

Stop: SIGTERM goes to the ranks (through the supervisor), not to torchrun — torchrun turns its own SIGTERM
into a non-zero exit with a traceback even when the trainer stops cleanly; signalled ranks checkpoint at the
next step boundary, exit 0, and torchrun exits 0. After ``timeout`` everything left (supervisor's group, each
rank's group, their descendants) gets SIGKILL, and /proc is checked until nothing of the launch is alive.
"""

from __future__ import annotations

import getpass
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

import tui_trainer
from tui_trainer.channel import layout
from tui_trainer.runs import procs
from tui_trainer.runs.errors import LaunchError, RunError, RunIsRunning, RunNotRunning
from tui_trainer.runs.files import open_private_append, read_json, write_json, write_private
from tui_trainer.runs.launch_lock import LOCK_FD_ENV, launch_lock
from tui_trainer.runs.status import (QUEUED, RUNNING, STOP_FILE, RunStatus, any_alive, derive_status,
                                     launch_processes, segment_tail)

TRAINER_MODULES = {"train": "tui_trainer.training.train", "onefile": "tui_trainer.training.onefile_train"}
SOURCE_CONFIG_FILE = "config.source.toml"
SUPERVISOR_MODULE = "tui_trainer.runs.supervisor"
LOOPBACK_TORCHRUN = "tui_trainer.runs.loopback_torchrun"
PREPARE_MODULE = "tui_trainer.training.prepare"
STARTUP_TIMEOUT_S = 20.0
PACKAGE_PARENT = str(Path(tui_trainer.__file__).resolve().parent.parent)

_children: list[subprocess.Popen] = []  # supervisors we started, reaped by a thread so none stays a zombie


# ---------------------------------------------------------------------------------------- the command
def torchrun_argv(cfg, run_dir: str | os.PathLike, *, resume: bool = False,
                  python: str | None = None) -> list[str]:
    """The torchrun command for ``cfg.launch``: on one node torchrun with its stores on loopback only
    (loopback_torchrun.py; ``--standalone`` would listen on every interface), c10d rendezvous across nodes."""
    lc = cfg.launch
    run_dir = Path(run_dir)
    if lc.nnodes == 1:
        argv = [python or sys.executable, "-m", LOOPBACK_TORCHRUN, "--nnodes=1", "--rdzv_backend=c10d",
                "--rdzv_endpoint=127.0.0.1:0", f"--rdzv_id={run_dir.name}"]
    else:
        argv = [python or sys.executable, "-m", "torch.distributed.run", f"--nnodes={lc.nnodes}",
                "--rdzv_backend=c10d", f"--rdzv_endpoint={lc.rdzv_endpoint}", f"--rdzv_id={lc.rdzv_id}"]
    argv += [f"--nproc_per_node={lc.nproc_per_node}", "-m", TRAINER_MODULES[lc.trainer],
             "--config", str(run_dir / layout.CONFIG_FILE), "--run-dir", str(run_dir)]
    if resume:
        argv.append("--resume")
    return argv


def prepare_argv(run_dir: str | os.PathLike, *, python: str | None = None) -> list[str]:
    """Token shards for the run's config, prepared before the one-file trainer starts (at once if they exist):
    it only reads shards. A first preparation shows in the run's log, and a stop ends it."""
    return [python or sys.executable, "-m", PREPARE_MODULE, "--config", str(Path(run_dir) / layout.CONFIG_FILE)]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def trainer_env(cfg, run_dir: str | os.PathLike, *, base: dict | None = None,
                cores: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(full environment, the variables we set) for the trainer.

    OMP_NUM_THREADS: [launch].env wins, then launch.omp_num_threads, then your shell's value, else
    cores ÷ processes per node (torchrun would otherwise force 1).
    """
    env = dict(os.environ if base is None else base)
    lc = cfg.launch
    added: dict[str, str] = {}
    if lc.omp_num_threads > 0:
        added["OMP_NUM_THREADS"] = str(lc.omp_num_threads)
    elif "OMP_NUM_THREADS" not in env:
        added["OMP_NUM_THREADS"] = str(max(1, (cores or cpu_count()) // lc.nproc_per_node))
    if lc.nnodes == 1 and "GLOO_SOCKET_IFNAME" not in env:
        added["GLOO_SOCKET_IFNAME"] = "lo"  # one machine: the ranks' gloo sockets on loopback, not the LAN
    added.update(lc.env)
    run_dir = Path(run_dir)
    added[layout.ENV_RUN_DIR] = str(run_dir)
    added[layout.ENV_EVENTS] = str(run_dir / layout.EVENTS_FILE)
    added["PYTHONUNBUFFERED"] = "1"  # the log file shows progress as it happens
    # The trainer and supervisor run the same tui_trainer as this process, installed or not.
    path = added.get("PYTHONPATH", env.get("PYTHONPATH", ""))
    if PACKAGE_PARENT not in path.split(os.pathsep):
        added["PYTHONPATH"] = PACKAGE_PARENT + (os.pathsep + path if path else "")
    env.update(added)
    return env, added


# -------------------------------------------------------------------------------------------- launch
def launch_run(store, *, config_path=None, toml_text: str | None = None, overrides: Iterable[str] = (),
               name: str | None = None):
    """Validate the config, create the run directory, write config.toml and start the supervisor.

    Raises ConfigError (nothing is created) or LaunchError (the run dir stays, with the reason in status.json).
    """
    from tui_trainer.training.lib.config import (apply_overrides, config_from_dict, config_to_toml,
                                                 parse_toml_text, read_toml)
    overrides = list(overrides)
    if config_path is not None and toml_text is not None:
        raise ValueError("give config_path or toml_text, not both")
    text: str | None = None
    if config_path is not None:
        data = read_toml(config_path)  # ConfigError for a missing file or bad TOML
        text = Path(config_path).read_text(encoding="utf-8")
        source = str(config_path)
        name = name or Path(config_path).stem
    elif toml_text is not None:
        data = parse_toml_text(toml_text, "(edited config)")
        text, source = toml_text, "(edited config)"
        name = name or "run"
    else:
        data, source = {}, "(defaults)"
        name = name or "default"
    cfg = config_from_dict(apply_overrides(data, overrides), source)
    if cfg.launch.backend == "slurm":
        from tui_trainer.runs import slurm
        slurm.preflight(store.root)  # before anything is created

    run = store.create(name)
    with launch_lock(run.dir, run.id, "launch") as lock_fd:
        if text is not None and not overrides and config_path is not None:
            write_private(run.config_file, text)
        else:
            header = f"Resolved config for run {run.id}, from {source}"
            if overrides:
                header += "\nwith overrides: " + " ".join(overrides)
            write_private(run.config_file, config_to_toml(cfg, header=header))
            if text is not None:
                write_private(run.dir / SOURCE_CONFIG_FILE, text)
        start(run, cfg, resume=False, lock_fd=lock_fd)
    return run


def resume_run(run):
    """Relaunch a run that is not running into its own directory with --resume (newest checkpoint).

    Under the run's launch lock from the first look at its state to the supervisor's start: of several resumes
    at once (CLI, console), one launches and the others are refused."""
    with launch_lock(run.dir, run.id, "resume") as lock_fd:
        _resume_locked(run, lock_fd)
    return run


def _resume_locked(run, lock_fd: int) -> None:
    status = derive_status(run.dir)
    if status.state in (RUNNING, QUEUED):
        raise RunIsRunning(f"run {run.id} is still {status.state} — nothing to resume")
    if not run.checkpoints():
        raise RunError(f"run {run.id} has no complete checkpoint in {run.checkpoint_dir} to resume from — "
                       f"start a new run instead (`gpt-console run {run.config_file}`)")
    from tui_trainer.training.lib.config import load_config
    cfg = load_config(run.config_file)
    newest = int(run.checkpoints()[-1].name.split("-")[-1])
    if newest >= cfg.schedule.max_steps:
        raise RunError(f"run {run.id} already trained all {cfg.schedule.max_steps} steps — to train it further, "
                       f"raise schedule.max_steps in {run.config_file} and resume again")
    start(run, cfg, resume=True, previous_status=status, lock_fd=lock_fd)


def start(run, cfg, *, resume: bool, previous_status: RunStatus | None = None,
          lock_fd: int | None = None) -> dict:
    """Write launch.json, start the supervisor and wait until it has started torchrun. Returns launch.json.

    ``lock_fd``: the run's launch lock (launch_lock.py), held by the caller; the supervisor inherits it and
    holds it for the launch's lifetime."""
    previous = read_json(run.launch_file) or {}
    history = list(previous.pop("history", []) or [])
    if previous:
        history.append({**previous, "status": previous_status.to_json() if previous_status else None})
    number = int(previous.get("launch", 0) or 0) + 1
    argv = torchrun_argv(cfg, run.dir, resume=resume)
    env, added = trainer_env(cfg, run.dir)
    try:
        events_offset = run.events_file.stat().st_size
    except OSError:
        events_offset = 0
    # Relative paths in the config (data.path, cache_dir) keep meaning what they meant at the first launch.
    cwd = previous.get("cwd") if resume and os.path.isdir(previous.get("cwd") or "") else os.getcwd()
    launch = {
        "launch": number, "resume": resume, "argv": argv, "cwd": cwd, "env": added,
        "host": socket.gethostname(), "user": _user(), "started_at": time.time(), "boot_id": procs.boot_id(),
        "trainer": cfg.launch.trainer, "nproc_per_node": cfg.launch.nproc_per_node, "nnodes": cfg.launch.nnodes,
        "events_offset": events_offset, "supervisor": None, "torchrun": None, "pgid": None, "workers": [],
        "history": history,
    }
    for stale in (run.status_file, run.dir / STOP_FILE):
        stale.unlink(missing_ok=True)
    if cfg.launch.backend == "slurm":
        return _submit_to_slurm(run, cfg, launch, resume=resume, env=added)
    if cfg.launch.trainer == "onefile":  # it only reads shards (the modular trainer prepares them itself)
        launch["prepare_argv"] = prepare_argv(run.dir)  # the supervisor runs this before torchrun
    write_json(run.launch_file, launch)
    run.log_file.parent.mkdir(mode=0o700, exist_ok=True)
    if lock_fd is not None:
        env = {**env, LOCK_FD_ENV: str(lock_fd)}
    with open_private_append(run.log_file) as log:
        log.write(f"=== gpt-console: launch {number} of {run.id} at {time.strftime('%Y-%m-%d %H:%M:%S')}"
                  f"{' (resume)' if resume else ''}\n=== gpt-console: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen([sys.executable, "-m", SUPERVISOR_MODULE, str(run.dir)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, close_fds=True, umask=0o077,
                                    pass_fds=() if lock_fd is None else (lock_fd,))
        except OSError as e:
            _launch_failed(run, number, f"could not start the supervisor: {e}")
    _children.append(proc)
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_json(run.launch_file) or {}
        if info.get("launch") == number and info.get("torchrun"):
            return info
        if proc.poll() is not None:
            tail = "\n  ".join(run.log_tail(8))
            _launch_failed(run, number, f"the supervisor exited with code {proc.returncode} before starting "
                                        f"torchrun; end of {run.log_file}:\n  {tail}")
        time.sleep(0.02)
    _launch_failed(run, number, f"torchrun did not start within {STARTUP_TIMEOUT_S:.0f} s (see {run.log_file})")
    raise AssertionError("unreachable")


def _submit_to_slurm(run, cfg, launch: dict, *, resume: bool, env: dict[str, str]) -> dict:
    """A Slurm launch: the job's batch script takes the supervisor's place (runs/slurm.py)."""
    from tui_trainer.runs import slurm
    if not (cfg.launch.omp_num_threads or "OMP_NUM_THREADS" in cfg.launch.env):
        env.pop("OMP_NUM_THREADS", None)  # this host's core count says nothing about the nodes'
    script = run.dir / slurm.SCRIPT_FILE
    launch.update(argv=["sbatch", "--parsable", str(script)], env=env, backend="slurm")
    write_json(run.launch_file, launch)
    run.log_file.parent.mkdir(mode=0o700, exist_ok=True)
    with open_private_append(run.log_file) as log:
        log.write(f"=== gpt-console: launch {launch['launch']} of {run.id} at {time.strftime('%Y-%m-%d %H:%M:%S')}"
                  f"{' (resume)' if resume else ''}: submitting {script} to Slurm\n".encode())
    try:
        return slurm.submit(run, cfg, launch, resume=resume, module=TRAINER_MODULES[cfg.launch.trainer], env=env)
    except RunError as e:
        _launch_failed(run, launch["launch"], str(e))
        raise


def _launch_failed(run, number: int, message: str) -> None:
    write_json(run.status_file, RunStatus("failed", message, None, None, time.time(), "launcher", number).to_json())
    raise LaunchError(f"could not launch run {run.id}: {message}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# ---------------------------------------------------------------------------------------------- stop
def request_stop(run) -> dict:
    """Record the stop request and send SIGTERM to the ranks (via the supervisor). Returns launch.json."""
    launch = read_json(run.launch_file)
    if launch is None or not any_alive(launch):
        raise RunNotRunning(f"run {run.id} is not running ({derive_status(run.dir).label})")
    write_json(run.dir / STOP_FILE, {"launch": launch.get("launch"), "requested_at": time.time(),
                                     "by": _user(), "pid": os.getpid()})
    if launch.get("backend") == "slurm":
        from tui_trainer.runs import slurm
        slurm.request_stop(launch)
        return launch
    if not procs.signal_process(launch.get("supervisor"), signal.SIGTERM):
        # Supervisor gone (killed): signal the ranks ourselves, torchrun only if no rank is known.
        sent = [procs.signal_process(w, signal.SIGTERM) for w in launch.get("workers") or []]
        if not any(sent):
            procs.signal_process(launch.get("torchrun"), signal.SIGTERM)
    return launch


STOP_GRACE_S = 120.0  # the least a graceful stop is given before SIGKILL
STOP_GRACE_MAX_S = 6 * 3600.0  # and the most, whatever step time the event log claims


def stop_grace(run, floor: float = STOP_GRACE_S) -> float:
    """Seconds a graceful stop may take before SIGKILL: ``floor``, or longer for a run whose steps are slow —
    the trainer stops at a step boundary, and killing it mid-step loses every step since its last checkpoint.
    Twice the newest step's duration of this launch, plus a minute for the stop checkpoint."""
    launch = read_json(run.launch_file) or {}
    offset = launch.get("events_offset") if isinstance(launch.get("events_offset"), int) else 0
    steps = [e.get("dt") for e in segment_tail(run.events_file, offset) if e.get("type") == "step"]
    dt = steps[-1] if steps and isinstance(steps[-1], (int, float)) and math.isfinite(steps[-1]) else 0.0
    return max(floor, min(2.0 * dt + 60.0, STOP_GRACE_MAX_S)) if dt > 0 else floor


def stop_run(run, *, timeout: float | None = None, kill_timeout: float = 10.0,
             min_timeout: float = STOP_GRACE_S) -> RunStatus:
    """Graceful stop, escalating to SIGKILL of every process of the launch after ``timeout`` seconds
    (None: ``stop_grace``, at least ``min_timeout``)."""
    timeout = stop_grace(run, min_timeout) if timeout is None else timeout
    request_stop(run)
    if not _wait_gone(run, timeout):
        kill_launch(run)
        if not _wait_gone(run, kill_timeout):
            alive = [e["pid"] for e in launch_processes(read_json(run.launch_file) or {}) if procs.is_alive(e)]
            raise RunError(f"run {run.id}: processes {alive} survived SIGKILL (uninterruptible I/O?) — "
                           "check them with `ps` and try again")
    return derive_status(run.dir)


def kill_launch(run) -> list[int]:
    """SIGKILL every process of the current launch: ranks (each leads its own group), descendants of the
    supervisor and torchrun, and the supervisor's group. Returns the pids signalled."""
    launch = read_json(run.launch_file) or {}
    if launch.get("backend") == "slurm":
        from tui_trainer.runs import slurm
        slurm.kill(launch)
        return []
    entries = launch_processes(launch)
    stats = procs.all_stats()
    for root in (launch.get("supervisor"), launch.get("torchrun")):
        if procs.is_alive(root):
            for pid in procs.descendants(root["pid"], stats):  # type: ignore[index]
                entry = procs.stamp(pid)
                if entry:
                    entries.append(entry)
    killed = []
    for entry in entries:  # ranks first, so none is left running without its torchrun
        if entry is not launch.get("supervisor") and procs.kill_group(entry, signal.SIGKILL):
            killed.append(entry["pid"])
    if procs.kill_group(launch.get("supervisor"), signal.SIGKILL):
        killed.append(launch["supervisor"]["pid"])
    return killed


def _wait_gone(run, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        launch = read_json(run.launch_file) or {}
        if not any_alive(launch):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
