# Sourced by scripts/console and scripts/test: make .venv and install the project into it, once.
# Re-runs are cheap: once set up, this starts no Python at all (two stamp files in the venv are checked).
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
# Importing torch takes over a second, so it is never imported here: the stamp records where torch's
# __init__.py was found (importlib's find_spec, no import), and while that file exists nothing is asked again.
TORCH_STAMP="$VENV/.gpt-console-torch"
torch_origin=""
if [ -f "$TORCH_STAMP" ]; then read -r torch_origin < "$TORCH_STAMP" || true; fi
if [ -z "$torch_origin" ] || [ ! -f "$torch_origin" ]; then
  find_torch='import importlib.util as u; s = u.find_spec("torch"); print(s.origin if s and s.origin else "")'
  torch_origin="$("$VENV/bin/python" -c "$find_torch")"
  if [ -z "$torch_origin" ]; then
    echo "gpt-console: installing PyTorch (${TORCH_SPEC:-torch})" >&2
    # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options such as --index-url
    "$VENV/bin/python" -m pip install --quiet ${TORCH_SPEC:-torch}
    torch_origin="$("$VENV/bin/python" -c "$find_torch")"
  fi
  if [ -n "$torch_origin" ]; then printf '%s\n' "$torch_origin" > "$TORCH_STAMP"; fi
fi

STAMP="$VENV/.gpt-console-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "gpt-console: installing the project and its dependencies" >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
