"""Shared test set-up: the offline tokenizer cache and the shared data files, when they are beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GPT_CONSOLE_SHARED", REPO.parent / "shared"))

# tiktoken reads TIKTOKEN_CACHE_DIR when it first loads an encoding; point it at the shared GPT-2 BPE so the
# suite runs offline. A user's own setting wins.
if "TIKTOKEN_CACHE_DIR" not in os.environ and (SHARED / "tiktoken").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED / "tiktoken")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (Tiny Shakespeare, HellaSwag val); tests that need it skip with a reason if absent."""
    path = Path(os.environ.get("GPT_CONSOLE_SHARED_DATA", SHARED / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set GPT_CONSOLE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A Slurm cluster that answers (.ci/slurm-up starts a single-host one as root). Under CI its absence is a
    failure, elsewhere a skip that says how to start one."""
    import shutil
    import subprocess
    why = ""
    if not shutil.which("sbatch"):
        why = "no sbatch on PATH (start a local cluster with .ci/slurm-up, as root)"
    else:
        try:
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
            if r.returncode or not r.stdout.strip():
                why = f"sinfo: {(r.stderr or r.stdout).strip()} (start a cluster with .ci/slurm-up)"
        except subprocess.TimeoutExpired:
            why = "sinfo did not answer within 15 s"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"Slurm must run under CI: {why}")
        pytest.skip(why)


@pytest.fixture
def slurm_runs_root(slurm_cluster) -> Path:
    """A runs root outside /tmp (Slurm runs refuse node-local scratch), removed afterwards; every job the test
    submitted is cancelled whatever the outcome."""
    import json
    import shutil
    import subprocess
    import uuid
    root = REPO / "build" / f"slurm-runs-{uuid.uuid4().hex[:8]}"
    yield root
    for launch_file in root.glob("*/launch.json"):
        launch = json.loads(launch_file.read_text())
        for job in [launch.get("slurm_job_id")] + [h.get("slurm_job_id") for h in launch.get("history") or []]:
            if str(job or "").isdigit():
                subprocess.run(["scancel", str(job)], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
