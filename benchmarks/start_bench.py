"""The README's command, timed from the shell to the console's first frame: `./scripts/console` (its set-up
check included) in a real pseudo-terminal, 80×24, until the editor's title is on the terminal.

    .venv/bin/python -m benchmarks.start_bench                 # 5 rounds, median
    .venv/bin/python -m benchmarks.start_bench --rounds 9 -- scripts/console configs/shakespeare.toml

Nothing in the console is instrumented: the parent reads what the child writes to the terminal and stops the
clock when the marker text (the config's file name, which only the drawn editor shows) appears, then quits the
console with Ctrl-Q and waits for it. docs/benchmarks.md ("Console start-up") records a run.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def time_to_marker(argv: list[str], marker: bytes, timeout: float = 30.0) -> float:
    """Seconds from starting ``argv`` in an 80×24 pty to ``marker`` appearing in its output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdin=follower, stdout=follower, stderr=follower, env=env,
                            start_new_session=True)
    os.close(follower)
    seen = b""
    try:
        while marker not in seen:
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"no {marker!r} within {timeout:.0f} s; output so far: {seen[-400:]!r}")
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    raise RuntimeError(f"exited before {marker!r}: {seen[-400:]!r}") from None
        elapsed = time.perf_counter() - start
        os.write(leader, b"\x11")  # Ctrl-Q: quit as a user would
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    os.read(leader, 65536)
                except OSError:
                    break
        return elapsed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        os.close(leader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--marker", default="default.toml", help="text that only the first frame shows")
    parser.add_argument("command", nargs="*", help="default: scripts/console configs/default.toml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as runs:
        argv = args.command or ["scripts/console", "configs/default.toml"]
        argv = argv + ["--runs-root", runs]
        figures = [time_to_marker(argv, args.marker.encode()) for _ in range(args.rounds)]
    print(f"{' '.join(argv[:-2])}: median {statistics.median(figures) * 1000:.0f} ms of {len(figures)} "
          f"(min {min(figures) * 1000:.0f}, max {max(figures) * 1000:.0f}); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
