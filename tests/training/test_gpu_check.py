"""benchmarks/gpu_check.py cannot rot: its --smoke sequence runs here (CPU, tiny model, torchrun + compile),
and neither it nor the trainer it launches imports textual (the GPU box we borrow has none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import REPO


@pytest.fixture
def without_textual(tmp_path) -> dict[str, str]:
    """An environment where `import textual` fails, for this process's children and theirs
    (PYTHONPATH precedes site-packages, so the blocking package shadows an installed textual)."""
    blocker = tmp_path / "blocker" / "textual"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('textual is not installed on this machine')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), str(REPO)])
    env.pop("GPT_CONSOLE_RUN_DIR", None)
    env.pop("GPT_CONSOLE_EVENTS", None)
    blocked = subprocess.run([sys.executable, "-c", "import textual"], env=env, capture_output=True,
                             text=True)
    assert blocked.returncode != 0 and "not installed" in blocked.stderr  # the blocker works
    return env


def test_gpu_check_and_trainer_import_without_textual(without_textual):
    code = "import benchmarks.gpu_check, tui_trainer.training.train, tui_trainer.training.lib.evaluation"
    result = subprocess.run([sys.executable, "-c", code], env=without_textual, cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_smoke_runs_the_whole_check_on_cpu(without_textual, shared_data, tmp_path):
    report_dir = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", str(report_dir), "--smoke",
         "--tiktoken-cache", os.environ["TIKTOKEN_CACHE_DIR"],
         "--hellaswag", str(shared_data / "hellaswag_val.jsonl.gz")],
        env=without_textual, cwd=REPO, capture_output=True, text=True, timeout=600)
    report = json.loads((report_dir / "report.json").read_text())
    failed = [c for c in report["checks"] if not c["ok"]]
    assert result.returncode == 0 and report["ok"] and not failed, (failed, result.stdout[-3000:])
    assert {c["check"] for c in report["checks"]} == {
        "killed", "process group", "checkpoint", "loss falls", "resume", "run end", "validation", "hellaswag",
        "sample", "eager run", "compile = eager"}
    assert report["compiled"]["tok_per_s"] > 0 and report["eager"]["tok_per_s"] > 0
    assert "PASSED" in (report_dir / "report.md").read_text()
