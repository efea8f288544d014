"""``RunStore`` (the runs root) and ``Run`` (one run directory). See the package docstring for the API."""

from __future__ import annotations

import copy
import os
import re
import stat
import threading
import time
from pathlib import Path
from typing import Iterable

from tui_trainer.channel import layout
from tui_trainer.channel.follower import EventFollower
from tui_trainer.channel.summary import RunSummary
from tui_trainer.runs import ids
from tui_trainer.runs.errors import AmbiguousRun, RunNotFound
from tui_trainer.runs.files import make_private_dir, read_json, tail_lines
from tui_trainer.runs.removal import check_run_ref, delete_run_dir
from tui_trainer.runs.status import RUNNING, RunStatus, derive_status

ENV_RUNS_ROOT = "GPT_CONSOLE_RUNS"
_CHECKPOINT_RE = re.compile(r"^step-(\d+)$")
# Per-process incremental summaries: a second summary() of the same run folds only the events added since.
_summaries: dict[Path, tuple[EventFollower, RunSummary]] = {}
_summaries_lock = threading.Lock()


def default_runs_root() -> Path:
    """``$GPT_CONSOLE_RUNS`` if set, else ``./runs``."""
    return Path(os.environ.get(ENV_RUNS_ROOT) or "runs")


class Run:
    """One run directory. Cheap to create; every accessor reads the files afresh."""

    def __init__(self, path: str | os.PathLike):
        self.dir = Path(path).absolute()
        self.id = self.dir.name

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.dir == self.dir

    def __hash__(self) -> int:
        return hash(self.dir)

    # ------------------------------------------------------------------------------------------- paths
    @property
    def config_file(self) -> Path:
        return self.dir / layout.CONFIG_FILE

    @property
    def events_file(self) -> Path:
        return self.dir / layout.EVENTS_FILE

    @property
    def log_file(self) -> Path:
        return self.dir / layout.TRAINER_LOG

    @property
    def launch_file(self) -> Path:
        return self.dir / layout.LAUNCH_FILE

    @property
    def status_file(self) -> Path:
        return self.dir / layout.STATUS_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return layout.checkpoint_root(self.dir)

    # ------------------------------------------------------------------------------------------- state
    def launch_info(self) -> dict | None:
        return read_json(self.launch_file)

    def status(self) -> RunStatus:
        return derive_status(self.dir)

    def is_running(self) -> bool:
        return self.status().state == RUNNING

    def created_at(self) -> float:
        """Start time from the id, else the directory's mtime."""
        t = ids.id_time(self.id)
        if t is not None:
            return t
        try:
            return self.dir.stat().st_mtime
        except OSError:
            return 0.0

    def follower(self, offset: int = 0) -> EventFollower:
        return EventFollower(self.events_file, offset)

    def summary(self) -> RunSummary:
        """The run's events folded into a RunSummary (a copy; later calls only fold what is new)."""
        with _summaries_lock:
            follower, summary = _summaries.get(self.events_file) or (self.follower(), RunSummary())
            restarts = follower.restarts
            while batch := follower.poll(max_events=10_000):
                if follower.restarts != restarts:  # the log was replaced: fold it from scratch
                    summary, restarts = RunSummary(), follower.restarts
                for event in batch:
                    summary.apply(event)
            _summaries[self.events_file] = (follower, summary)
            snapshot = copy.copy(summary)
            snapshot.errors = list(summary.errors)
            return snapshot

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (``step-NNNNNNNN`` dirs; temp dirs have other names), oldest first."""
        try:
            entries = [p for p in self.checkpoint_dir.iterdir() if p.is_dir() and _CHECKPOINT_RE.match(p.name)]
        except OSError:
            return []
        return sorted(entries, key=lambda p: int(_CHECKPOINT_RE.match(p.name).group(1)))  # type: ignore[union-attr]

    def log_tail(self, lines: int = 40) -> list[str]:
        return tail_lines(self.log_file, lines)

    def config_text(self) -> str:
        return self.config_file.read_text(encoding="utf-8")

    def config(self):
        """The run's config.toml as a validated TrainingConfig (raises ConfigError)."""
        from tui_trainer.training.lib.config import load_config
        return load_config(self.config_file)

    # ----------------------------------------------------------------------------------------- actions
    def stop(self, timeout: float | None = None, *, kill_timeout: float = 10.0) -> RunStatus:
        """Graceful stop; SIGKILL after ``timeout`` s (None: 120 s, longer for slow steps: launcher.stop_grace)."""
        from tui_trainer.runs.launcher import stop_run
        return stop_run(self, timeout=timeout, kill_timeout=kill_timeout)

    def resume(self) -> "Run":
        from tui_trainer.runs.launcher import resume_run
        return resume_run(self)

    def send_control(self, action: str, **payload) -> str:
        from tui_trainer.runs.control import send
        return send(self, action, **payload)

    def control(self, action: str, *, timeout: float = 60.0, **payload) -> dict:
        from tui_trainer.runs.control import request
        return request(self, action, timeout=timeout, **payload)


class RunStore:
    """The runs root: a directory of run directories."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root if root is not None else default_runs_root()).absolute()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def list(self) -> list[Run]:
        """Every run directory (anything holding a config, events or launch file), newest first."""
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return []
        runs = [Run(p) for p in entries if not p.name.startswith(".") and is_run_dir(p)]
        return sorted(runs, key=lambda r: (r.created_at(), r.id), reverse=True)

    def get(self, ref: str) -> Run:
        """The run with id ``ref``, or the only one whose id starts with it (or contains it, as a last resort).

        A run id is one name from ``list()``: never a path, ``.``/``..``, or a symlink out of the root, so no
        command (delete above all) can reach a directory that is not one of this root's runs.
        """
        ref = check_run_ref(ref)
        direct = self.root / ref
        if is_run_dir(direct):
            return Run(direct)
        runs = self.list()
        for matcher in (lambda r: r.id.startswith(ref), lambda r: ref in r.id):
            found = [r for r in runs if matcher(r)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = ", ".join(r.id for r in found[:6]) + (" ..." if len(found) > 6 else "")
                raise AmbiguousRun(f"'{ref}' matches {len(found)} runs ({names}) — give more of the id")
        raise RunNotFound(f"no run '{ref}' in {self.root} — `gpt-console runs` lists them "
                          "(use --runs-root if they live elsewhere)")

    def create(self, name: str) -> Run:
        """A new, empty run directory (0700) with a unique id made from the time and ``name``."""
        make_private_dir(self.root)
        now = time.time()
        for candidate in ids.candidates(name, now):
            try:
                make_private_dir(self.root / candidate, exist_ok=False)
            except FileExistsError:
                continue
            run = Run(self.root / candidate)
            make_private_dir(run.dir / layout.LOG_DIR)
            return run
        raise AssertionError("unreachable")

    def delete(self, ref: str | Run) -> None:
        """Remove one run directory of this root. Refuses a running (or launching) run, a directory that is
        not one of this root's runs, and a run directory holding files gpt-console did not create."""
        run = ref if isinstance(ref, Run) else self.get(ref)
        delete_run_dir(self.root, run)
        with _summaries_lock:
            _summaries.pop(run.events_file, None)

    def launch(self, *, config_path: str | os.PathLike | None = None, toml_text: str | None = None,
               overrides: Iterable[str] = (), name: str | None = None) -> Run:
        from tui_trainer.runs.launcher import launch_run
        return launch_run(self, config_path=config_path, toml_text=toml_text, overrides=overrides, name=name)


def is_run_dir(path: Path) -> bool:
    """A real directory (a symlink could point anywhere) holding a config, events or launch file."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
    except (OSError, ValueError):
        return False
    return any((path / f).exists() for f in (layout.CONFIG_FILE, layout.EVENTS_FILE, layout.LAUNCH_FILE))
