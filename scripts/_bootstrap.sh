# Sourced by scripts/console and scripts/test: make .venv and install the project into it, once.
# Re-runs are cheap: pip is only called when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPT_CONSOLE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "gpt-console: creating virtual environment in $VENV" >&2
  "$PY" -m venv "$VENV"
fi

# torch is installed only when missing, from TORCH_SPEC. The default, plain `torch`, is what a GPU box
# wants; on a CPU-only machine point it at a CPU build (see README) to skip the multi-GB CUDA download.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "gpt-console: installing PyTorch (${TORCH_SPEC:-torch})" >&2
  # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options such as --index-url
  "$VENV/bin/python" -m pip install --quiet ${TORCH_SPEC:-torch}
fi

STAMP="$VENV/.gpt-console-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "gpt-console: installing the project and its dependencies" >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
