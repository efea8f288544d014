"""On a shared box a single-node run listens on loopback only: `torchrun --standalone` opened its
rendezvous store (and the ranks' store) on every interface. A real 2-rank launch trains, and every listening
TCP socket of its processes is bound to 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from tui_trainer.runs import RunStore, procs

from runs_helpers import wait_final, wait_for, wait_for_event

pytestmark = pytest.mark.slow
LISTEN = "0A"


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening_addresses(pids: list[int]) -> list[tuple[str, int]]:
    """(hex local address, port) of every listening TCP socket (v4 and v6) the processes hold."""
    inodes = set().union(*(socket_inodes(pid) for pid in pids))
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == LISTEN and fields[9] in inodes:
                    address, port = fields[1].split(":")
                    found.append((address, int(port, 16)))
    return found


def both_ranks(run) -> dict | None:
    info = run.launch_info() or {}
    return info if len(info.get("workers") or []) == 2 else None


def test_single_node_launch_listens_on_loopback_only(tmp_path, tiny_config):
    run = RunStore(tmp_path / "runs").launch(config_path=tiny_config(100000))
    try:
        info = wait_for(lambda: both_ranks(run), 120, "both ranks")
        wait_for_event(run, lambda e: e["type"] == "step" and e["step"] >= 1, 240, "training steps")
        launch = [info["supervisor"], info["torchrun"], *info["workers"]]
        pids = [e["pid"] for e in launch if procs.is_alive(e)]
        pids += [p for e in launch for p in procs.descendants(e["pid"])]
        listening = listening_addresses(pids)
        assert len(listening) >= 2, listening            # the rendezvous store and the ranks' store at least
        assert all(address == "0100007F" for address, _ in listening), listening  # 127.0.0.1, little-endian
        assert "loopback_torchrun" in " ".join(procs.cmdline(info["torchrun"]["pid"]))
    finally:
        run.stop(timeout=60)
    assert wait_final(run, 60).state == "stopped"
