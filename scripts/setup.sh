#!/usr/bin/env bash
# Create .venv and install prepflow with the embedded llama.cpp backend, the text and math extras,
# and the test tools. Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all,hf,dev]'
# Byte-compile the editable sources once: with PYTHONDONTWRITEBYTECODE set (as on CI machines)
# every run would otherwise recompile them (~0.1 s per start).
.venv/bin/python -m compileall -q prepflow > /dev/null
