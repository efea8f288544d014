"""TF32 switching: one API, so that every later reader of either the legacy or the new API works."""

from __future__ import annotations

import subprocess
import sys

from .harness import REPO, trainer_env

# Run in a fresh interpreter: the float32 precision settings are process-global, and a mixed state would leak
# into every later test of this process.
READ_BOTH_APIS = """
import torch
from tui_trainer.training.lib.precision import configure_precision
configure_precision("float32", True, torch.device("cuda"))  # the TF32 branch; no GPU is touched
legacy = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
          torch.backends.cudnn.allow_tf32)
new = (torch.backends.cuda.matmul.fp32_precision, torch.backends.fp32_precision)
print(legacy, new)
"""


def test_tf32_leaves_both_the_legacy_and_the_new_api_readable():
    result = subprocess.run([sys.executable, "-c", READ_BOTH_APIS], env=trainer_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    legacy, new = result.stdout.strip().split(") (")
    assert legacy.startswith("('high', True"), result.stdout  # TF32 is on, as seen through the legacy API
    assert "tf32" in new, result.stdout                        # and through the new one
