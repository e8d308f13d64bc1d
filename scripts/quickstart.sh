#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh), fetch the default local model and the judge model (verified by
# sha256), and run the quickstart pipeline on the embedded llama.cpp backend. Re-running resumes
# and does no work.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/prepflow models pull qwen2.5-coder-0.5b-instruct
.venv/bin/prepflow models pull qwen2.5-coder-1.5b-instruct
mkdir -p out
.venv/bin/prepflow run examples/quickstart.yaml --input examples/quickstart.jsonl \
  --output out/quickstart.jsonl --run-dir runs/quickstart "$@"
echo "report: runs/quickstart/report.md"
