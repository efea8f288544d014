"""The torchrun command and environment built from [launch] (no processes started)."""

from __future__ import annotations

import sys

from tui_trainer.runs.launcher import PACKAGE_PARENT, torchrun_argv, trainer_env
from tui_trainer.training.lib.config import load_config


def cfg(tmp_path, *overrides):
    return load_config(None, list(overrides))


def test_single_node_rendezvous_is_on_loopback(tmp_path):
    """--standalone listens on every interface; one node gets an explicit c10d endpoint on 127.0.0.1 through
    the wrapper that binds torchrun's stores there (loopback_torchrun.py)."""
    argv = torchrun_argv(cfg(tmp_path, "launch.nproc_per_node=2"), tmp_path / "r")
    assert argv[:3] == [sys.executable, "-m", "tui_trainer.runs.loopback_torchrun"]
    assert "--standalone" not in argv
    assert {"--nnodes=1", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0", "--rdzv_id=r"} <= set(argv)
    assert "--nproc_per_node=2" in argv
    i = argv.index("-m", 3)
    assert argv[i + 1] == "tui_trainer.training.train"
    assert argv[argv.index("--config") + 1] == str(tmp_path / "r" / "config.toml")
    assert argv[argv.index("--run-dir") + 1] == str(tmp_path / "r")
    assert "--resume" not in argv
    assert torchrun_argv(cfg(tmp_path), tmp_path, resume=True)[-1] == "--resume"


def test_onefile_and_multi_node(tmp_path):
    c = cfg(tmp_path, "launch.trainer=onefile", "launch.nnodes=2", 'launch.rdzv_endpoint="node0:29500"',
            "launch.rdzv_id=job7", "launch.nproc_per_node=8", "optim.micro_batch_size=8")
    argv = torchrun_argv(c, tmp_path)
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--standalone" not in argv
    assert {"--nnodes=2", "--rdzv_backend=c10d", "--rdzv_endpoint=node0:29500", "--rdzv_id=job7",
            "--nproc_per_node=8"} <= set(argv)
    assert "tui_trainer.training.onefile_train" in argv


def test_omp_threads_rule(tmp_path):
    c = cfg(tmp_path, "launch.nproc_per_node=2")
    env, added = trainer_env(c, tmp_path, base={}, cores=8)
    assert added["OMP_NUM_THREADS"] == "4"
    env, added = trainer_env(c, tmp_path, base={"OMP_NUM_THREADS": "3"}, cores=8)
    assert "OMP_NUM_THREADS" not in added and env["OMP_NUM_THREADS"] == "3"  # the user's shell wins
    env, added = trainer_env(cfg(tmp_path, "launch.omp_num_threads=6"), tmp_path, base={"OMP_NUM_THREADS": "3"})
    assert env["OMP_NUM_THREADS"] == "6"
    env, _ = trainer_env(cfg(tmp_path, 'launch.env.OMP_NUM_THREADS="5"', "launch.omp_num_threads=6"), tmp_path,
                         base={})
    assert env["OMP_NUM_THREADS"] == "5"                                  # [launch].env wins over all
    env, _ = trainer_env(cfg(tmp_path, "launch.nproc_per_node=4"), tmp_path, base={}, cores=2)
    assert env["OMP_NUM_THREADS"] == "1"


def test_env_carries_run_dir_extra_vars_and_package_path(tmp_path):
    c = cfg(tmp_path, 'launch.env.NCCL_DEBUG="WARN"', 'launch.env.PYTHONPATH="/extra"')
    env, added = trainer_env(c, tmp_path / "run", base={"PATH": "/bin"})
    assert env["NCCL_DEBUG"] == "WARN" and env["PATH"] == "/bin"
    assert env["GPT_CONSOLE_RUN_DIR"] == str(tmp_path / "run")
    assert env["GPT_CONSOLE_EVENTS"] == str(tmp_path / "run" / "events.jsonl")
    assert env["PYTHONPATH"].split(":") == [PACKAGE_PARENT, "/extra"]
    assert env["PYTHONUNBUFFERED"] == "1"


def test_single_node_ranks_talk_over_loopback(tmp_path):
    """The ranks' own gloo sockets listen on the interface the hostname resolves to (often the LAN): on one
    machine they are pinned to loopback; several nodes, or the user's own choice, are left alone."""
    _, added = trainer_env(cfg(tmp_path, "launch.nproc_per_node=2"), tmp_path, base={})
    assert added["GLOO_SOCKET_IFNAME"] == "lo"
    nodes = cfg(tmp_path, "launch.nnodes=2", 'launch.rdzv_endpoint="n0:29500"', "launch.rdzv_id=j")
    _, added = trainer_env(nodes, tmp_path, base={})
    assert "GLOO_SOCKET_IFNAME" not in added
    env, added = trainer_env(cfg(tmp_path), tmp_path, base={"GLOO_SOCKET_IFNAME": "eth1"})
    assert "GLOO_SOCKET_IFNAME" not in added and env["GLOO_SOCKET_IFNAME"] == "eth1"
    _, added = trainer_env(cfg(tmp_path, 'launch.env.GLOO_SOCKET_IFNAME="ib0"'), tmp_path, base={})
    assert added["GLOO_SOCKET_IFNAME"] == "ib0"
