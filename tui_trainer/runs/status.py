"""What state a run is in, decided from its files and /proc — right even if nobody was watching.

Order of evidence: status.json written for the current launch (by the supervisor when torchrun exited, or by
``stop`` / an earlier derivation) wins; otherwise a live supervisor, torchrun or worker (pid + start time + boot
id, see procs.py) means ``running``; otherwise the event log of the current launch (the bytes after
``launch.json: events_offset``) decides: its run_end, else a stop request (``stop.json``), else ``lost``.
A final state found by derivation is written to status.json so the next look is cheap.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tui_trainer.channel import layout
from tui_trainer.channel.follower import parse_event_line
from tui_trainer.channel.diskfull import full_disk_reason
from tui_trainer.runs import procs
from tui_trainer.runs.files import read_json, tail_lines, write_json

STOP_FILE = "stop.json"
LOG_MARK = "=== gpt-console"  # lines the launcher and supervisor add to the trainer log
RUNNING, FINISHED, FAILED, STOPPED, LOST, CREATED = "running", "finished", "failed", "stopped", "lost", "created"
QUEUED = "queued"  # a Slurm job waiting for its allocation (runs/slurm.py)
FINAL_STATES = (FINISHED, FAILED, STOPPED, LOST)
TAIL_BYTES = 512 * 1024  # the end of a segment: run_end, the last error and the last step are in here
# A run not started by us (manual torchrun into a run dir) counts as alive while heartbeats are this fresh.
UNMANAGED_SILENCE_S = 60.0
# launch.json names no process yet for this long at most (launcher.STARTUP_TIMEOUT_S, plus slack).
LAUNCH_GRACE_S = 30.0


@dataclass(frozen=True)
class RunStatus:
    state: str                       # running / finished / failed / stopped / lost / created
    reason: str = ""                 # why, in a sentence (exit code, last error, log tail, run_end reason)
    exit_code: int | None = None     # torchrun's exit code when the supervisor saw it (negative = signal)
    step: int | None = None          # last step the trainer reported in this launch
    ended_at: float | None = None
    source: str = ""                 # what decided it: supervisor / stop / events / process / derived
    launch: int = 0                  # which launch of the run (1 = first, 2 = first resume, ...)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def label(self) -> str:
        if self.state == FAILED and self.exit_code not in (None, 0):
            return f"failed (exit {self.exit_code})" if self.exit_code > 0 else \
                f"failed ({_signal_name(-self.exit_code)})"
        return self.state

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunStatus":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


# ------------------------------------------------------------------------------------------- events tail
def segment_tail(events_file: Path, start: int = 0, max_bytes: int = TAIL_BYTES) -> list[dict]:
    """Decoded events among the last ``max_bytes`` of the log, never before byte ``start`` (the launch's
    first byte). Garbage and torn lines are ignored."""
    try:
        with open(events_file, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            begin = max(start, size - max_bytes)
            f.seek(begin)
            raw = f.read()
    except OSError:
        return []
    lines = raw.split(b"\n")
    if begin > start:
        lines = lines[1:]  # the first line may be cut
    # Schema-checked like every reader's events (channel/follower.py): garbage, too-deep or invalid lines drop out.
    return [event for line in lines if (event := parse_event_line(line)) is not None]


def _log_reason(run_dir: Path) -> str:
    """The most telling line at the end of the trainer log: the last one naming an error, else the last."""
    lines = [line for line in tail_lines(run_dir / layout.TRAINER_LOG, 60)
             if not line.startswith(LOG_MARK) and line.strip("* ")]
    for line in reversed(lines):
        if "Error" in line or "error:" in line or "Exception" in line or "disk full" in line:
            return line.strip()
    return lines[-1].strip() if lines else ""


# ---------------------------------------------------------------------------------------------- conclude
def conclude(run_dir: Path, launch: dict, exit_code: int | None, *, source: str) -> RunStatus:
    """The final status of a launch whose processes are gone, from its events, stop request and exit code."""
    run_dir = Path(run_dir)
    number = int(launch.get("launch", 0) or 0)
    events = segment_tail(run_dir / layout.EVENTS_FILE, int(launch.get("events_offset", 0) or 0))
    end = next((e for e in reversed(events) if e["type"] == "run_end"), None)
    error = next((e for e in reversed(events) if e["type"] == "error"), None)
    step = next((e.get("step") for e in reversed(events) if e["type"] in ("step", "run_end", "heartbeat")
                 and isinstance(e.get("step"), int)), None)
    stop = read_json(run_dir / STOP_FILE)
    stop_requested = bool(stop) and stop.get("launch") == number
    error_text = _first_paragraph(str(error.get("message", ""))) if error and error.get("message") else ""
    now = time.time()

    if end is not None:
        state = str(end.get("status", "")) if end.get("status") in (FINISHED, STOPPED, FAILED) else FAILED
        reason = str(end.get("reason", "")) or state
        if state == FAILED and error_text and error_text not in reason:
            # run_end carries the error's first line cut short: then the whole line is the reason, once.
            reason = error_text if error_text.startswith(reason) else f"{reason}: {error_text}"
        if state == STOPPED and stop_requested:
            reason = stopped_by_user(stop, reason)
        elif state == STOPPED and launch.get("backend") == "slurm" and reason.startswith("signal "):
            reason = stopped_by_slurm(reason)
        if exit_code not in (None, 0) and state != FAILED:
            reason += f" (torchrun exited with code {exit_code} afterwards)"
        return RunStatus(state, reason, exit_code, end.get("step", step), now, source, number)
    if stop_requested:
        return RunStatus(STOPPED, "stopped by the user; the trainer was killed before it wrote its final "
                                  "checkpoint and run_end (resume continues from the newest checkpoint)",
                         exit_code, step, now, source, number)
    detail = error_text or _log_reason(run_dir)
    full = full_disk_reason(run_dir)  # a full disk ends a run as silently as the OOM killer: say which
    if full:
        return RunStatus(FAILED, full + (f"; last words: {detail}" if detail and detail not in full else ""),
                         exit_code, step, now, source, number)
    if exit_code is None:
        rebooted = launch.get("boot_id") and procs.boot_id() and launch.get("boot_id") != procs.boot_id()
        why = ("the machine was rebooted while the run was going" if rebooted else
               "the trainer's processes are gone without a run_end event (killed, out of memory, or the "
               "machine went down)")
        return RunStatus(LOST, why + (f"; last words: {detail}" if detail else ""), None, step, now, source, number)
    if exit_code < 0:
        return RunStatus(LOST, f"torchrun was killed by {_signal_name(-exit_code)} before the trainer wrote "
                               f"run_end" + (f"; last words: {detail}" if detail else ""),
                         exit_code, step, now, source, number)
    if exit_code == 0:
        return RunStatus(FAILED, "the trainer exited without writing run_end" + (f": {detail}" if detail else ""),
                         exit_code, step, now, source, number)
    return RunStatus(FAILED, f"torchrun exited with code {exit_code}" + (f": {detail}" if detail else ""),
                     exit_code, step, now, source, number)


def stopped_by_user(stop: dict, trainer_reason: str) -> str:
    """A stop someone asked for (console, CLI): say so, not just the SIGTERM the trainer saw."""
    who = str(stop.get("by") or "").strip()
    text = "stopped by the user" + (f" ({who})" if who else "")
    if trainer_reason and not trainer_reason.startswith("signal ") and trainer_reason != "stop requested":
        text += f": {trainer_reason}"
    return text


def stopped_by_slurm(trainer_reason: str) -> str:
    """A Slurm job's ranks got SIGTERM nobody here asked for: the time-limit warning the job asks for
    (``--signal=TERM@slurm.stop_signal_seconds``), or an administrator's ``scancel --signal``."""
    return (f"stopped by Slurm ({trainer_reason.removeprefix('signal ')}: the job's time limit is near, or it was "
            "signalled with scancel); resume continues from the checkpoint it wrote")


def _first_paragraph(text: str) -> str:
    """Up to the first blank line, lines joined: "invalid config X:" alone says nothing, its next line does."""
    paragraph = text.strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())


def launch_processes(launch: dict) -> list[dict]:
    """Stamps of every process of a launch: supervisor, torchrun and the ranks."""
    entries = [launch.get("supervisor"), launch.get("torchrun"), *(launch.get("workers") or [])]
    return [e for e in entries if isinstance(e, dict)]


def any_alive(launch: dict) -> bool:
    if launch.get("backend") == "slurm":
        from tui_trainer.runs import slurm
        return slurm.job_active(launch)
    return any(procs.is_alive(e) for e in launch_processes(launch))


# ----------------------------------------------------------------------------------------------- derive
def derive_status(run_dir: str | os.PathLike, *, persist: bool = True) -> RunStatus:
    run_dir = Path(run_dir)
    launch = read_json(run_dir / layout.LAUNCH_FILE)
    final = read_json(run_dir / layout.STATUS_FILE)
    if launch is None:
        if final and final.get("state") in FINAL_STATES:
            return RunStatus.from_json(final)
        return _unmanaged_status(run_dir)
    number = int(launch.get("launch", 0) or 0)
    if final and final.get("launch") == number and final.get("state") in FINAL_STATES:
        return RunStatus.from_json(final)
    if launch.get("backend") == "slurm":
        from tui_trainer.runs import slurm
        return slurm.derive(run_dir, launch, persist=persist)
    if any_alive(launch):
        stop = read_json(run_dir / STOP_FILE)
        stopping = bool(stop) and stop.get("launch") == number
        return RunStatus(RUNNING, "stopping" if stopping else "", source="process", launch=number)
    if _starting(launch):
        return RunStatus(RUNNING, "starting", source="launch", launch=number)
    status = conclude(run_dir, launch, None, source="derived")
    if persist:
        try:
            write_json(run_dir / layout.STATUS_FILE, status.to_json())
        except OSError:
            pass  # a read-only look (someone else's run dir) still gets the right answer
    return status


def _starting(launch: dict) -> bool:
    """launch.json is written before the supervisor exists, and the supervisor records itself a moment later:
    in between, no process is known yet. That is a launch starting, not a lost run (and must not be persisted
    as one) — unless it has been so for longer than a launch may take (the launcher then records a failure)."""
    if launch.get("supervisor") is not None:
        return False
    started = launch.get("started_at")
    return isinstance(started, (int, float)) and 0 <= time.time() - started < LAUNCH_GRACE_S


def _unmanaged_status(run_dir: Path) -> RunStatus:
    """A run dir without launch.json: just created, or a trainer started by hand (manual torchrun)."""
    events = segment_tail(run_dir / layout.EVENTS_FILE)
    if not events:
        return RunStatus(CREATED, "not launched yet", source="derived")
    last = events[-1]
    end = next((e for e in reversed(events) if e["type"] in ("run_end", "run_start")), None)
    step = next((e.get("step") for e in reversed(events) if isinstance(e.get("step"), int)), None)
    if end is not None and end["type"] == "run_end":
        return RunStatus(str(end.get("status", FAILED)), str(end.get("reason", "")), None, step,
                         end.get("t"), "events")
    t = last.get("t") if isinstance(last.get("t"), (int, float)) else 0.0
    if time.time() - t < UNMANAGED_SILENCE_S:
        return RunStatus(RUNNING, "not launched by gpt-console; alive by its recent events", step=step,
                         source="events")
    full = full_disk_reason(run_dir)
    if full:
        return RunStatus(FAILED, full, None, step, None, "derived")
    return RunStatus(LOST, "not launched by gpt-console and silent since "
                           f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} without a run_end event",
                     step=step, source="events")
