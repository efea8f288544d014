"""The Slurm backend: submit a run as a batch job, read its queue state, stop it gracefully.

A Slurm launch has no supervisor on the submitting host. The batch script (``job.sbatch`` in the run
directory, kept for the user to read and re-submit) starts one ``torchrun`` per node through ``srun`` with
the c10d rendezvous on the allocation's first node, and when ``srun`` returns it writes status.json itself.
When the script cannot (the job was cancelled, timed out, preempted or its node failed), the status is derived
from the event log plus what Slurm says about the job (``squeue`` while it is known to the queue, then
``sacct``, then ``scontrol show job``), so the reason names what happened.

Stop: ``scancel --signal=TERM`` to the job's steps — every rank checkpoints at the step boundary and exits,
exactly as a local stop — and the job asks Slurm for the same signal ``slurm.stop_signal_seconds`` before its
time limit. A job still pending in the queue is simply cancelled. Stdlib only (the console imports this).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tui_trainer.channel import layout
from tui_trainer.runs.errors import LaunchError, RunError
from tui_trainer.runs.files import read_json, write_json, write_private

SCRIPT_FILE = "job.sbatch"
NO_SBATCH = ("launch.backend is \"slurm\" but this host has no `sbatch` on PATH — submit from the cluster's "
             "login node, or set launch.backend = \"local\"")
COMMAND_TIMEOUT_S = 30.0
STATE_CACHE_S = 2.0
_state_cache: dict[str, tuple[float, "JobState"]] = {}
# Slurm job states (squeue/sacct long names), grouped by what they mean for the run.
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                 "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "REQUEUE_FED", "REQUEUE_HOLD"}
UNREACHABLE = "UNREACHABLE"  # ours: squeue failed, so nothing is known
QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
ENDED_BECAUSE = {
    "CANCELLED": "the Slurm job was cancelled (scancel)",
    "TIMEOUT": "the Slurm job reached its time limit",
    "PREEMPTED": "the Slurm job was preempted by a higher-priority job",
    "NODE_FAIL": "a node of the Slurm job failed",
    "OUT_OF_MEMORY": "the Slurm job ran out of memory (killed by Slurm's memory limit)",
    "BOOT_FAIL": "the Slurm job's nodes failed to boot",
    "DEADLINE": "the Slurm job reached its deadline",
    "FAILED": "the Slurm job failed",
    "REVOKED": "the Slurm job was revoked",
}


@dataclass(frozen=True)
class JobState:
    state: str        # Slurm's long state name (PENDING, RUNNING, COMPLETED, CANCELLED, ...) or "UNKNOWN"
    reason: str = ""  # Slurm's reason (pending: Resources / Priority / ...; ended: e.g. NonZeroExitCode)
    exit_code: str = ""  # "code:signal" as sacct/scontrol print it
    source: str = ""  # squeue / sacct / scontrol / none

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def queued(self) -> bool:
        return self.state in QUEUED_STATES


# ------------------------------------------------------------------------------------------ the script
def batch_script(cfg, run_dir: str | os.PathLike, *, resume: bool, module: str, env: dict[str, str],
                 cwd: str, job_name: str, python: str | None = None) -> str:
    """The sbatch script for ``cfg``: one torchrun per node via srun, c10d rendezvous on the first node."""
    sl, lc = cfg.slurm, cfg.launch
    run_dir = Path(run_dir)
    python = sl.python or python or sys.executable
    q = shlex.quote
    options = [f"--job-name={job_name}", f"--nodes={lc.nnodes}", "--ntasks-per-node=1",
               f"--output={run_dir / layout.TRAINER_LOG}", "--open-mode=append", f"--chdir={cwd}"]
    for flag, value in (("cpus-per-task", sl.cpus_per_task), ("gpus-per-node", sl.gpus_per_node),
                        ("partition", sl.partition), ("account", sl.account), ("time", sl.time_limit)):
        if value:  # 0 or "": Slurm's default
            options.append(f"--{flag}={value}")
    if sl.stop_signal_seconds:
        # No "B:" prefix: the signal goes to the job's steps (torchrun → ranks), not to this script.
        options.append(f"--signal=TERM@{sl.stop_signal_seconds}")
    options += [f"--{name}" + (f"={value}" if value else "") for name, value in sl.sbatch.items()]

    trainer = [python, "-m", "torch.distributed.run", '--nnodes="$SLURM_NNODES"',
               f"--nproc_per_node={lc.nproc_per_node}", "--rdzv_backend=c10d",
               f'--rdzv_endpoint="$head_node:{sl.rdzv_port}"', '--rdzv_id="$SLURM_JOB_ID"',
               "-m", module, "--config", str(run_dir / layout.CONFIG_FILE), "--run-dir", str(run_dir)]
    if resume:
        trainer.append("--resume")
    # Quote everything but the shell variables the line relies on.
    line = " ".join(a if "$" in a else q(a) for a in trainer)
    prepare = []
    if lc.trainer == "onefile":  # it only reads token shards: one task prepares them first (at once if ready)
        from tui_trainer.runs.launcher import PREPARE_MODULE
        argv = [python, "-m", PREPARE_MODULE, "--config", str(run_dir / layout.CONFIG_FILE)]
        prepare = [f"srun --nodes=1 --ntasks=1 {' '.join(q(a) for a in argv)}",
                   "code=$?",
                   'if [ "$code" -ne 0 ]; then',
                   '  echo "=== gpt-console: data preparation exited with code $code; the trainer was not started"',
                   "else"]
    indent = "  " if prepare else ""
    lines = ["#!/bin/bash",
             f"# gpt-console: {'resume of ' if resume else ''}run {run_dir.name}. Re-submit by hand with:",
             f"#   sbatch {q(str(run_dir / SCRIPT_FILE))}",
             *(f"#SBATCH {o}" for o in options),
             "",
             "set -u",
             *(f"export {k}={q(v)}" for k, v in env.items()),
             # torchrun would force one thread per rank; share the task's cores instead unless told otherwise.
             f'export OMP_NUM_THREADS="${{OMP_NUM_THREADS:-$(( ${{SLURM_CPUS_PER_TASK:-$(nproc)}} / '
             f'{lc.nproc_per_node} > 0 ? ${{SLURM_CPUS_PER_TASK:-$(nproc)}} / {lc.nproc_per_node} : 1 ))}}"',
             *([sl.setup] if sl.setup else []),
             'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
             'echo "=== gpt-console: slurm job $SLURM_JOB_ID on $SLURM_NNODES node(s): $SLURM_JOB_NODELIST"',
             *prepare,
             *(indent + s for s in (f"srun --ntasks-per-node=1 --kill-on-bad-exit=1 {line}", "code=$?")),
             *(["fi"] if prepare else []),
             f"{q(python)} -m tui_trainer.runs.slurm conclude {q(str(run_dir))} \"$code\"",
             'exit "$code"',
             ""]
    return "\n".join(lines)


def sbatch_available() -> bool:
    return shutil.which("sbatch") is not None


def submit(run, cfg, launch: dict, *, resume: bool, module: str, env: dict[str, str]) -> dict:
    """Write the batch script into the run dir, submit it and record the job id in launch.json."""
    preflight(run.dir)
    script = run.dir / SCRIPT_FILE
    write_private(script, batch_script(cfg, run.dir, resume=resume, module=module, env=env, cwd=launch["cwd"],
                                       job_name=f"gpt-{run.id}"))
    out = _command(["sbatch", "--parsable", str(script)], what="sbatch")
    if out.returncode != 0:
        raise LaunchError(f"sbatch refused the job for run {run.id}: {_first_line(out.stderr or out.stdout)} "
                          f"(script: {script})")
    job_id = out.stdout.strip().split(";")[0]  # --parsable prints "id" or "id;cluster"
    if not job_id.isdigit():
        raise LaunchError(f"sbatch printed no job id for run {run.id}: {out.stdout.strip()!r}")
    launch.update(backend="slurm", slurm_job_id=job_id, slurm_script=str(script), submitted_at=time.time())
    write_json(run.launch_file, launch)
    return launch


def preflight(runs_root: Path) -> None:
    """What must hold before a run is created for Slurm: sbatch here, a runs root every node can see."""
    if not sbatch_available():
        raise LaunchError(NO_SBATCH)
    refuse_scratch_root(runs_root)


def refuse_scratch_root(run_dir: Path) -> None:
    """Every node writes into the run directory, so it must be on a shared filesystem: never /tmp."""
    resolved = Path(run_dir).resolve()
    for scratch in ("/tmp", "/var/tmp", "/dev/shm"):
        if resolved == Path(scratch) or Path(scratch) in resolved.parents:
            raise LaunchError(f"the run directory {resolved} is under {scratch}, which each Slurm node has "
                              "for itself — put the runs root on a filesystem every node sees "
                              "(gpt-console --runs-root DIR, or $GPT_CONSOLE_RUNS)")


# --------------------------------------------------------------------------------------- queue state
def job_state(job_id: str, *, max_age: float = STATE_CACHE_S) -> JobState:
    """What Slurm says about a job, at most ``max_age`` seconds old: the console and ``attach`` ask several
    times a second, and each answer costs the controller an RPC."""
    job_id = str(job_id)
    cached = _state_cache.get(job_id)
    if cached and time.monotonic() - cached[0] <= max_age:
        return cached[1]
    state = _query_job_state(job_id)
    _state_cache[job_id] = (time.monotonic(), state)
    return state


def _query_job_state(job_id: str) -> JobState:
    """squeue while Slurm still lists the job, then sacct, then scontrol."""
    if not job_id.isdigit():
        return JobState("UNKNOWN", "no job id recorded", source="none")
    out = _command(["squeue", "-h", "-j", job_id, "-o", "%T|%r"], what="squeue", check=False)
    if out.returncode == 0 and out.stdout.strip():
        state, _, reason = out.stdout.strip().splitlines()[0].partition("|")
        return JobState(state.strip(), _clean_reason(reason), source="squeue")
    if out.returncode != 0 and "invalid job id" not in (out.stderr or "").lower():
        # The controller did not answer: the job may well be running; say so rather than guess.
        return JobState(UNREACHABLE, _first_line(out.stderr or out.stdout), source="squeue")
    out = _command(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,Reason,ExitCode"], what="sacct",
                   check=False)
    if out.returncode == 0 and out.stdout.strip():
        state, reason, code = (out.stdout.strip().splitlines()[0].split("|") + ["", ""])[:3]
        # "CANCELLED by 0" -> CANCELLED
        return JobState(state.split()[0] if state else "UNKNOWN", _clean_reason(reason), code, "sacct")
    out = _command(["scontrol", "-o", "show", "job", job_id], what="scontrol", check=False)
    if out.returncode == 0 and "JobState=" in out.stdout:
        fields = dict(item.partition("=")[::2] for item in out.stdout.split() if "=" in item)
        return JobState(fields.get("JobState", "UNKNOWN"), _clean_reason(fields.get("Reason", "")),
                        fields.get("ExitCode", ""), "scontrol")
    return JobState("UNKNOWN", f"Slurm no longer knows job {job_id}", source="none")


def job_active(launch: dict) -> bool:
    """Queued or running — or Slurm did not answer, which must not pass for "gone"."""
    job = job_state(str(launch.get("slurm_job_id", "")))
    return job.active or job.state == UNREACHABLE


def _clean_reason(reason: str) -> str:
    reason = reason.strip()
    return "" if reason in ("None", "(null)", "") else reason.strip("()")


def ended_reason(job: JobState) -> str:
    """A sentence for a job that is no longer active, naming what Slurm says happened."""
    text = ENDED_BECAUSE.get(job.state, "")
    if not text:
        return ""
    extra = [x for x in (job.reason if job.reason != "NonZeroExitCode" else "",
                         f"exit {job.exit_code}" if job.exit_code not in ("", "0:0") else "") if x]
    return text + (f" ({', '.join(extra)})" if extra else "")


# ---------------------------------------------------------------------------------------------- stop
def request_stop(launch: dict) -> JobState:
    """Graceful stop: SIGTERM to the running job's steps; a job still waiting in the queue is cancelled."""
    job_id = str(launch.get("slurm_job_id", ""))
    job = job_state(job_id)
    if job.queued:
        _scancel([job_id])
    elif job.active:
        _scancel(["--signal=TERM", job_id])
    return job


def kill(launch: dict) -> None:
    """Cancel the whole job (after a graceful stop timed out)."""
    job_id = str(launch.get("slurm_job_id", ""))
    if job_id.isdigit():
        _scancel([job_id])


def _scancel(args: list[str]) -> None:
    _state_cache.pop(args[-1], None)
    out = _command(["scancel", *args], what="scancel")
    if out.returncode != 0:
        raise RunError(f"scancel {' '.join(args)} failed: {_first_line(out.stderr or out.stdout)}")


# ---------------------------------------------------------------------------------------------- status
def derive(run_dir: Path, launch: dict, *, persist: bool):
    """The status of a Slurm launch: queued / running while Slurm has the job active, else concluded from
    the events, the stop request and Slurm's account of how the job ended."""
    from tui_trainer.runs.status import (FAILED, LOST, QUEUED, RUNNING, STOP_FILE, STOPPED, RunStatus,
                                         conclude)
    number = int(launch.get("launch", 0) or 0)
    job_id = launch.get("slurm_job_id")
    if not str(job_id or "").isdigit() and _submitting(launch):
        # launch.json is written before sbatch answers: a look in between sees no job yet. That is a
        # submission under way, not a lost run (and must not be persisted as one).
        return RunStatus(QUEUED, "being submitted to Slurm", source="slurm", launch=number)
    job = job_state(str(job_id or ""))
    if job.queued:
        return RunStatus(QUEUED, f"job {job_id} waiting in the queue" + (f": {job.reason}" if job.reason else ""),
                         source="slurm", launch=number)
    if job.state == UNREACHABLE:
        return RunStatus(RUNNING, f"job {job_id}: state unknown, Slurm did not answer ({job.reason})",
                         source="slurm", launch=number)
    if job.active:
        stop = read_json(run_dir / STOP_FILE)
        stopping = bool(stop) and stop.get("launch") == number
        return RunStatus(RUNNING, "stopping" if stopping else f"job {job_id} {job.state.lower()}",
                         source="slurm", launch=number)
    status = conclude(run_dir, launch, None, source="slurm")
    why = ended_reason(job)
    if status.state == STOPPED and status.step is None:
        why = ""
        status = RunStatus(STOPPED, f"stopped by the user before job {job_id} started (cancelled in the queue)",
                           None, None, status.ended_at, "slurm", number)
    if status.state == LOST:
        # Without run_end, Slurm's word beats "the processes are gone" guesses.
        status = RunStatus(FAILED if why else LOST, why or status.reason, None, status.step, status.ended_at,
                           "slurm", number)
    elif why and why not in status.reason and status.state != "finished":
        status = RunStatus(status.state, f"{status.reason} — {why}", status.exit_code, status.step,
                           status.ended_at, "slurm", number)
    if persist:
        try:
            write_json(run_dir / layout.STATUS_FILE, status.to_json())
        except OSError:
            pass  # a read-only look (another user's run, a full disk): the status is still returned
    return status


def _submitting(launch: dict) -> bool:
    from tui_trainer.runs.status import LAUNCH_GRACE_S
    started = launch.get("started_at")
    return isinstance(started, (int, float)) and 0 <= time.time() - started < LAUNCH_GRACE_S


def conclude_from_job(run_dir: Path, exit_code: int) -> int:
    """Called by the batch script when srun returns: write status.json from the events and srun's code."""
    from tui_trainer.runs.status import conclude
    launch = read_json(run_dir / layout.LAUNCH_FILE) or {}
    status = conclude(run_dir, launch, exit_code, source="slurm job")
    write_json(run_dir / layout.STATUS_FILE, status.to_json())
    print(f"=== gpt-console: run {status.label}: {status.reason}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- utils
def _command(argv: list[str], *, what: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        if check:
            raise RunError(f"`{what}` is not on PATH — run this on a host of the Slurm cluster") from None
        return subprocess.CompletedProcess(argv, 127, "", f"{what}: not found")
    except subprocess.TimeoutExpired:
        if check:
            raise RunError(f"`{what}` did not answer within {COMMAND_TIMEOUT_S:.0f} s — is slurmctld up? "
                           "(check with `sinfo`)") from None
        return subprocess.CompletedProcess(argv, 124, "", f"{what}: timed out")


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[0] if lines else "(no message)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "conclude":
        try:
            code = int(argv[2])
        except ValueError:
            code = 1
        return conclude_from_job(Path(argv[1]), code)
    print("usage: python -m tui_trainer.runs.slurm conclude RUN_DIR EXIT_CODE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
