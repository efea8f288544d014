"""The console process never imports torch (fast start over SSH)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_console_module_imports_without_torch():
    code = (
        "import sys, pkgutil, importlib, tui_trainer.app as app\n"
        "names = [m.name for m in pkgutil.walk_packages(app.__path__, 'tui_trainer.app.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "import tui_trainer.cli\n"
        "assert len(names) > 15, names\n"
        "print('torch' in sys.modules, len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded, count = out.stdout.split()
    assert loaded == "False", "a console module pulled in torch"
