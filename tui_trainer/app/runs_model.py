"""Rows of the runs table, kept live cheaply: one follower per run reads only the bytes added since the last
refresh, so a table of long runs costs almost nothing to keep current. No Textual here."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tui_trainer.app import format as fmt
from tui_trainer.channel.summary import RunSummary

STATUS_STYLE = {
    "running": "bold green", "finished": "cyan", "stopped": "yellow", "failed": "bold red", "lost": "bold magenta",
    "created": "dim",
}


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

    @property
    def running(self) -> bool:
        return self.state == "running"

    def cells(self) -> tuple[str, ...]:
        return (self.run_id, self.status_label, self.step, self.loss, self.best_val, self.hellaswag,
                self.tok_per_s, self.age)


COLUMNS: tuple[str, ...] = ("run", "status", "step", "loss", "best val", "HellaSwag", "tok/s", "age")


def age(seconds: float) -> str:
    return fmt.duration(seconds) + " ago" if seconds >= 0 else "—"


def make_row(run_id: str, state: str, label: str, reason: str, summary: RunSummary, created_at: float,
             now: float) -> RunRow:
    step = "—"
    if summary.step is not None:
        step = f"{summary.step + 1}" + (f"/{summary.max_steps}" if summary.max_steps else "")
    hs = "—"
    if summary.hellaswag_acc_norm is not None:
        hs = f"{summary.hellaswag_acc_norm:.4f}"
    return RunRow(run_id, state, label, reason, step, fmt.number(summary.loss), fmt.number(summary.best_val), hs,
                  fmt.count(summary.tok_per_s), age(now - created_at), created_at)


class RunsModel:
    """Runs under a RunStore, with incrementally folded summaries."""

    def __init__(self, store) -> None:
        self.store = store
        self._followed: dict[str, tuple[object, RunSummary]] = {}  # run id -> (EventFollower, summary)
        self.runs: dict[str, object] = {}
        # The runs screen's refresher and the editor's throughput lookup both use this model from threads.
        self.lock = threading.RLock()

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
            return self._refresh(time.time() if now is None else now)

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
            rows.append(make_row(run.id, state, label, reason, summary, run.created_at(), now))
        return rows
