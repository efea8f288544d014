"""Rows of the runs table, kept live cheaply: one follower per run reads only the bytes added since the last
refresh, so a table of long runs costs almost nothing to keep current. No Textual here."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from tui_trainer.app import format as fmt
from tui_trainer.channel.summary import RunSummary
from tui_trainer.runs.labels import read_label

STATUS_STYLE = {
    "running": "bold green", "finished": "cyan", "stopped": "yellow", "failed": "bold red", "lost": "bold magenta",
    "created": "dim", "queued": "bold blue",
}


RESUMABLE_STATES = ("stopped", "failed", "lost")


def resume_step(run, state: str, max_steps: int | None) -> int | None:
    """The checkpoint step a resume would continue from, or None where ``r`` cannot work: a run that is
    running or finished, has no complete checkpoint, or whose newest checkpoint already is the last step."""
    if state not in RESUMABLE_STATES:
        return None
    try:
        checkpoints = run.checkpoints()
    except OSError:
        return None
    if not checkpoints:
        return None
    try:
        step = int(checkpoints[-1].name.rsplit("-", 1)[-1])
    except ValueError:
        return None
    return None if max_steps is not None and step >= max_steps else step


ENV_VAR_HINT = re.compile(r"\b(?:[Ss]et|export)\s+([A-Z][A-Z0-9]*_[A-Z0-9_]+)")


def environment_hint(reason: str) -> str:
    """When the fix is an environment variable: the console's environment is what its runs get, and a
    running console never sees an ``export`` made in another shell."""
    match = ENV_VAR_HINT.search(reason or "")
    if match is None:
        return ""
    return (f"Runs get {match.group(1)} from the console that launches them: quit it, export the variable, "
            "start it again (running runs keep going).")


@dataclass(frozen=True)
class RunRow:
    run_id: str
    state: str
    status_label: str
    reason: str
    step: str
    loss: str
    best_val: str
    hellaswag: str
    tok_per_s: str
    age: str
    created_at: float
    name: str = ""             # the user's display name (label.json), "" = none
    note: str = ""
    resume_from: int | None = None  # checkpoint step a resume continues from; None = r cannot work

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def title(self) -> str:
        """What the table's run column shows: the user's name for the run, else its id."""
        return self.name or self.run_id

    def cells(self) -> tuple[str, ...]:
        return (self.title, self.status_label, self.step, self.loss, self.best_val, self.hellaswag,
                self.tok_per_s, self.age)

    def matches(self, query: str) -> bool:
        """Every word of ``query`` appears (case-insensitively) in the id, name, note or status."""
        haystack = " ".join((self.run_id, self.name, self.note, self.status_label)).casefold()
        return all(word in haystack for word in query.casefold().split())


COLUMNS: tuple[str, ...] = ("run", "status", "step", "loss", "best val", "HellaSwag", "tok/s", "age")
NARROW_COLUMNS: tuple[str, ...] = ("run", "status", "step", "loss", "age")  # under 100 columns (rest: detail)


def age(seconds: float) -> str:
    """Since the run started (the column is headed "age": no "ago", it costs four columns)."""
    return fmt.duration(seconds) if seconds >= 0 else "—"


def make_row(run_id: str, state: str, label: str, reason: str, summary: RunSummary, created_at: float,
             now: float, *, name: str = "", note: str = "", resume_from: int | None = None) -> RunRow:
    step = "—"
    if summary.step is not None:
        step = f"{summary.step + 1}" + (f"/{summary.max_steps}" if summary.max_steps else "")
    hs = "—"
    if summary.hellaswag_acc_norm is not None:
        hs = f"{summary.hellaswag_acc_norm:.4f}"
    return RunRow(run_id, state, label, reason, step, fmt.number(summary.loss), fmt.number(summary.best_val), hs,
                  fmt.count(summary.tok_per_s), age(now - created_at), created_at, name, note, resume_from)


class RunsModel:
    """Runs under a RunStore, with incrementally folded summaries."""

    def __init__(self, store) -> None:
        self.store = store
        self._followed: dict[str, tuple[object, RunSummary]] = {}  # run id -> (EventFollower, summary)
        self.runs: dict[str, object] = {}
        # The runs screen's refresher and the editor's throughput lookup both use this model from threads.
        self.lock = threading.RLock()
        self.clock = time.time  # what "age" is measured against (snapshot tests freeze it)

    def summary(self, run) -> RunSummary:
        with self.lock:
            return self._summary(run)

    def summaries(self) -> list[tuple[str, RunSummary]]:
        """(run id, summary) for every run as of the last refresh, newest first."""
        with self.lock:
            return [(rid, self._followed[rid][1]) for rid in self.runs if rid in self._followed]

    def _summary(self, run) -> RunSummary:
        follower, summary = self._followed.get(run.id, (None, None))
        if follower is None:
            follower, summary = run.follower(), RunSummary()
            self._followed[run.id] = (follower, summary)
        while True:
            before = follower.restarts
            events = follower.poll(max_events=10_000)  # bounded batches: a huge log never sits in memory
            if follower.restarts != before:  # the log was replaced: start the summary over
                summary = RunSummary()
                self._followed[run.id] = (follower, summary)
            for event in events:
                summary.apply(event)
            if len(events) < 10_000:
                return summary  # type: ignore[return-value]

    def refresh(self, now: float | None = None) -> list[RunRow]:
        with self.lock:
            return self._refresh(self.clock() if now is None else now)

    def _refresh(self, now: float) -> list[RunRow]:
        rows = []
        runs = self.store.list()
        self.runs = {run.id: run for run in runs}
        for gone in set(self._followed) - set(self.runs):
            del self._followed[gone]
        for run in runs:
            summary = self._summary(run)
            try:
                status = run.status()
                state, label, reason = status.state, status.label, status.reason
            except Exception as e:  # a half-written or foreign directory: show it, do not break the table
                state, label, reason = "unknown", "unknown", str(e)
            label_ = read_label(run.dir)
            rows.append(make_row(run.id, state, label, reason, summary, run.created_at(), now,
                                 name=label_.name, note=label_.note,
                                 resume_from=resume_step(run, state, summary.max_steps)))
        return rows
