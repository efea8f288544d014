"""scripts/_bootstrap.sh: once set up, starting the console costs no Python (and never imports torch).

The venv here is a real one made by `python -m venv`; it sees this checkout's installed packages (torch
included) through a .pth file, so find_spec finds the real torch. PYTHONPROFILEIMPORTTIME makes every Python
the script starts list its imports on stderr; the test reads them to see if Python ran and what it imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPO / "scripts" / "_bootstrap.sh"


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    pytest.importorskip("torch")
    path = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120)
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(path / "bin" / "python"), "-c", ask], check=True, capture_output=True,
                          text=True, timeout=60).stdout.strip()
    Path(site, "this_checkout.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The project counts as installed (it is importable through the .pth); only the torch check is under test.
    (path / ".gpt-console-installed").touch()
    os.utime(path / ".gpt-console-installed", (2**31, 2**31))  # newer than any edit of pyproject.toml
    return path


def bootstrap(venv: Path) -> str:
    # A TORCH_SPEC that cannot install: the install branch must not be taken while torch is there.
    env = dict(os.environ, GPT_CONSOLE_VENV=str(venv), PYTHONPROFILEIMPORTTIME="1",
               TORCH_SPEC="no-such-package-x")
    out = subprocess.run(["bash", "-c", f'source "{BOOTSTRAP}" && echo "bootstrap ok"'], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "bootstrap ok" in out.stdout, out.stderr[-2000:]
    return out.stderr


def imported(stderr: str) -> list[str]:
    return [line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")]


def test_first_check_finds_torch_without_importing_it_and_later_starts_run_no_python(venv):
    stamp = venv / ".gpt-console-torch"
    first = bootstrap(venv)
    modules = imported(first)
    assert modules, "the first start should have asked Python where torch is"
    assert not [m for m in modules if m.split(".")[0] == "torch"], "the check imported torch"
    assert "installing PyTorch" not in first
    origin = Path(stamp.read_text().strip())
    assert origin.name == "__init__.py" and origin.parent.name == "torch" and origin.is_file()

    again = bootstrap(venv)
    assert imported(again) == [], "an already set-up start ran Python"

    # torch moved since (the stamp names a file that is gone): asked again, still without importing it.
    stamp.write_text(str(venv / "gone" / "torch" / "__init__.py") + "\n")
    third = bootstrap(venv)
    assert imported(third) and not [m for m in imported(third) if m.split(".")[0] == "torch"]
    assert Path(stamp.read_text().strip()) == origin


def test_the_editors_start_path_imports_neither_torch_nor_numpy():
    """What `./scripts/console` loads before the editor's first frame: the runs screen (numpy, via its charts'
    series) is installed on first use instead."""
    code = ("import sys, tui_trainer.cli, tui_trainer.app.console, tui_trainer.app.screens.editor\n"
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
