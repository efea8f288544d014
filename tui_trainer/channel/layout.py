"""Where things live inside a run directory. The trainer, the launcher and the console all agree on this.

    <run_dir>/
      config.toml        resolved TrainingConfig (written before launch / at trainer start)
      events.jsonl       the event log (channel/schema.py) — the source of truth for everything shown
      launch.json        launch facts: argv, torchrun pid/pgid, host, user, start time, pid start ticks
      status.json        final status written by whoever saw the end (launcher, CLI, trainer's run_end)
      logs/trainer.log   torchrun's and the workers' stdout+stderr (files, never a pipe the console owns)
      checkpoints/step-00001234/   one complete checkpoint (a directory renamed into place atomically)
      control/<id>.json  control requests to a live run (see channel/control.py)
"""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "config.toml"
EVENTS_FILE = "events.jsonl"
LAUNCH_FILE = "launch.json"
STATUS_FILE = "status.json"
LOG_DIR = "logs"
TRAINER_LOG = "logs/trainer.log"
CHECKPOINT_DIR = "checkpoints"
CONTROL_DIR = "control"
LAUNCH_LOCK = "launch.lock"  # flock'ed by the launcher, then by the run's supervisor (runs/launch_lock.py)

# Everything gpt-console itself puts at the top of a run directory (names, then name patterns): a delete
# removes a run only when it holds nothing else. Add a name here when you make a new file in run dirs.
RUN_ENTRIES = frozenset({
    CONFIG_FILE, EVENTS_FILE, LAUNCH_FILE, STATUS_FILE, LOG_DIR, CHECKPOINT_DIR, CONTROL_DIR, LAUNCH_LOCK,
    "config.source.toml", "stop.json", "profile", "job.sbatch", "label.json",
    "label.json",  # the run's name and note, set from the runs screen (runs/labels.py)
})
RUN_ENTRY_PATTERNS = (
    r"config\.toml\.\d+",       # an earlier config kept by the trainer
    r"\..+\.tmp",                 # a private file's temp twin, cut short by a crash
)

# Environment variables the launcher sets for the trainer (the trainer's CLI flags win over them).
ENV_RUN_DIR = "GPT_CONSOLE_RUN_DIR"
ENV_EVENTS = "GPT_CONSOLE_EVENTS"


def events_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / EVENTS_FILE


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def control_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONTROL_DIR
