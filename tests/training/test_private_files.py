"""A run started by hand (no console, no launcher) keeps its files to its owner whatever the umask: the run
directory and every directory under it 0700, every file 0600."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest


from .harness import prepared_workdir, run_trainer, trainer_argv, trainer_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return prepared_workdir(tmp_path_factory, "private")


def _modes(run_dir: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(run_dir.stat().st_mode)}
    for path in run_dir.rglob("*"):
        found[str(path.relative_to(run_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_manual_run_is_private_under_a_permissive_umask(workdir):
    run_dir = workdir / "by-hand"
    result = subprocess.run(trainer_argv(workdir / "tiny.toml", run_dir, "schedule.max_steps=2",
                                         "checkpoint.every=1"),
                            env=trainer_env(), cwd=workdir, capture_output=True, text=True, timeout=180,
                            umask=0o002)
    assert result.returncode == 0, result.stderr
    modes = _modes(run_dir)
    assert "events.jsonl" in modes and "checkpoints/step-00000002/checkpoint.pt" in modes
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o700 if (run_dir / name).is_dir() else 0o600)}
    assert wrong == {}


def test_resume_into_an_existing_open_run_dir_tightens_it(workdir):
    run_dir = workdir / "opened-up"
    first = run_trainer(workdir / "tiny.toml", run_dir, "schedule.max_steps=2")
    assert first.returncode == 0, first.stderr
    run_dir.chmod(0o755)
    (run_dir / "events.jsonl").chmod(0o644)
    result = subprocess.run(trainer_argv(workdir / "tiny.toml", run_dir, "schedule.max_steps=3", resume=True),
                            env=trainer_env(), cwd=workdir, capture_output=True, text=True, timeout=180,
                            umask=0o022)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "events.jsonl").stat().st_mode) == 0o600
