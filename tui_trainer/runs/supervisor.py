"""The supervisor: one small stdlib process per launch that starts torchrun, records who is who, and writes
the final status even when no console is watching.

    python -m tui_trainer.runs.supervisor <run_dir>

Started by the launcher in a new session, its output appended to logs/trainer.log. It reads the torchrun
argv from launch.json, then:
- records itself, torchrun and (once they appear) the rank processes with their start times in launch.json;
- turns SIGTERM/SIGINT into SIGTERM for the ranks (torchrun only while no rank is known), so a stop is the
  trainer's graceful stop and torchrun exits 0; ignores SIGHUP;
- when torchrun exits, SIGKILLs any rank still alive after a short grace (a rank outliving torchrun is an
  orphan), then writes status.json from torchrun's exit code, the launch's events and any stop request;
- holds the run's launch lock (launch_lock.py) until just before it writes the final status: inherited from the
  launcher, or taken here when started by hand, so a second supervisor for the same run directory refuses to
  start, and a final status always means the run can be resumed or deleted at once;
- writes nothing once the run directory has vanished (deleted under it): it asks the trainer to stop and
  leaves the runs root as it found it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tui_trainer.channel import layout
from tui_trainer.runs import procs
from tui_trainer.runs.errors import RunError
from tui_trainer.runs.files import read_json, write_json
from tui_trainer.runs.launch_lock import LOCK_FD_ENV, acquire
from tui_trainer.runs.status import conclude

ORPHAN_GRACE_S = 3.0
POLL_S = 0.25


class Supervisor:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.launch_file = run_dir / layout.LAUNCH_FILE
        launch = read_json(self.launch_file)
        if launch is None or not launch.get("argv"):
            raise SystemExit(f"gpt-console supervisor: no usable {self.launch_file}")
        self.launch = launch
        self.child: subprocess.Popen | None = None
        self.stop_signals = 0
        self.lock_fd = _hold_launch_lock(run_dir)
        self.vanished = False

    # --------------------------------------------------------------------------------------------- run
    def run(self) -> int:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        prepare = self.launch.get("prepare_argv")  # the token shards first, whichever trainer follows
        code = self._supervise(prepare) if prepare else 0
        if code == 0 and not self.stop_signals and self.run_dir.is_dir():
            code = self._supervise(self.launch["argv"])
        elif code != 0:
            print(f"=== gpt-console: data preparation exited with code {code}; torchrun not started", flush=True)
        self._reap_orphans()
        if not self.run_dir.is_dir():
            print(f"=== gpt-console: torchrun exited with code {code}; run directory {self.run_dir} was "
                  "deleted, nothing written back", flush=True)
            return 0
        status = conclude(self.run_dir, self.launch, code, source="supervisor")
        # Let go first: whoever reads this final status may resume or delete at once (until then this process
        # still counts as the launch's, so a resume in between is refused as "still running", never doubled).
        os.close(self.lock_fd)
        write_json(self.run_dir / layout.STATUS_FILE, status.to_json())
        print(f"=== gpt-console: torchrun exited with code {code}; run {status.label}: {status.reason}",
              flush=True)
        return 0

    def _supervise(self, argv: list[str]) -> int:
        """Run ``argv`` (the data preparation, then torchrun) to its end. It is launch.json's "torchrun" while
        it runs, so a stop or a kill reaches the preparation too."""
        self.child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=self.launch.get("cwd"))
        self.launch.update(supervisor=procs.stamp(os.getpid()), torchrun=procs.stamp(self.child.pid),
                           pgid=os.getpgid(0))
        self._save()
        if self.stop_signals:  # a stop that arrived while it was being started
            self._forward()
        while True:
            try:
                return self.child.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                self._discover_workers()
                self._check_run_dir()

    def _save(self) -> None:
        if self.run_dir.is_dir():  # a deleted run directory is not made again by writing into it
            write_json(self.launch_file, self.launch)

    def _check_run_dir(self) -> None:
        """The run dir vanished: the trainer stops at its next step without saving; see that it does."""
        if self.vanished or self.run_dir.is_dir():
            return
        self.vanished = True
        os.write(1, b"=== gpt-console: the run directory was deleted, asking the trainer to stop\n")
        self._forward()

    # ---------------------------------------------------------------------------------------- signals
    def _on_stop(self, signum, frame) -> None:
        self.stop_signals += 1
        # os.write, not print: a signal landing inside another print would make print raise (reentrant call).
        os.write(1, f"=== gpt-console: {signal.Signals(signum).name} received, asking the trainer to stop\n".encode())
        self._forward()

    def _forward(self) -> None:
        if self.child is None:
            return
        self._discover_workers()
        workers = [w for w in self.launch.get("workers") or [] if procs.is_alive(w)]
        if workers:
            for w in workers:
                procs.signal_process(w, signal.SIGTERM)
        elif self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    # ---------------------------------------------------------------------------------------- workers
    def _discover_workers(self) -> None:
        """Record torchrun's rank processes (its children running the trainer module) once they appear."""
        if self.child is None:
            return
        known = {w["pid"] for w in self.launch.get("workers") or []}
        module = _trainer_module(self.launch["argv"])
        new = []
        for pid in procs.children(self.child.pid):
            if pid in known:
                continue
            cmd = procs.cmdline(pid)
            if module and module not in cmd:
                continue
            entry = procs.stamp(pid)
            if entry:
                new.append(entry)
        if new:
            self.launch["workers"] = list(self.launch.get("workers") or []) + new
            self._save()

    def _reap_orphans(self) -> None:
        """Ranks that outlive torchrun (no PR_SET_PDEATHSIG, or stuck) get SIGKILL after a short grace."""
        workers = self.launch.get("workers") or []
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while any(procs.is_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        for w in workers:
            if procs.kill_group(w, signal.SIGKILL):
                print(f"=== gpt-console: killed orphaned rank process {w['pid']}", flush=True)
        me = os.getpid()
        for pid in procs.group_members(os.getpgid(0)):
            if pid != me:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _hold_launch_lock(run_dir: Path) -> int:
    """The launch lock's descriptor: inherited from the launcher, else taken now (RunError if held)."""
    inherited = os.environ.pop(LOCK_FD_ENV, "")  # popped: torchrun and the ranks have no business with it
    if inherited.isdigit():
        fd = int(inherited)
        os.set_inheritable(fd, False)
        return fd
    return acquire(run_dir, run_dir.name, "supervise")


def _trainer_module(argv: list[str]) -> str:
    """The module torchrun runs (after torchrun's own ``-m``), to tell rank processes from other children."""
    after = argv[3:]
    return after[after.index("-m") + 1] if "-m" in after[:-1] else ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tui_trainer.runs.supervisor RUN_DIR", file=sys.stderr)
        return 2
    try:
        supervisor = Supervisor(Path(argv[0]))
    except RunError as e:
        print(f"gpt-console supervisor: {e}", file=sys.stderr)
        return 1
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
