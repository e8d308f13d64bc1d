#!/usr/bin/env bash
# Create .venv and install prepflow (editable) with its extras and the test tools, plus the system
# packages the tests use (scripts/system_deps.sh). Idempotent and quick: the Python install is
# skipped while pyproject.toml, this script and the interpreter are unchanged since the last
# successful install (a stamp in .venv records their hash).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
./scripts/system_deps.sh
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.prepflow-setup
want=$(cat pyproject.toml scripts/setup.sh <(.venv/bin/python -VV) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[all,hf,dev,docs,documents,rag,code,ui,ray]'
  echo "$want" > "$stamp"
fi
# Byte-compile the editable sources: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# run would otherwise recompile them (~0.1 s per start). Only changed files are recompiled.
.venv/bin/python -m compileall -q prepflow > /dev/null
# Compile the text filters' C cutters now rather than in the first run (cached per machine).
.venv/bin/python -c "from prepflow.operators.common.native import build; print(build())"
