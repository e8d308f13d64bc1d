"""Where worker processes start to pay: `text-pretrain-clean` on threads and on processes.

The local executor runs CPU-heavy steps in threads below ``PROCESS_MIN_ROWS`` input rows and in
worker processes from there (``prepflow/engine/executors/local.py``). This script measures the
choice: for inputs of several sizes, the same run with the threshold forced each way (the CLI
in a child process with the constant patched), wall time, 2 workers, median of ``--repeat``.

Input: documents drawn with a fixed seed from every corpus in ../shared/data/corpora, each copy
numbered so that deduplication keeps its work. Usage:

    .venv/bin/python benchmarks/threads_vs_processes.py [--rows 5000 20000 50000 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "data" / "corpora"
WORK = REPO / ".bench" / "threads_vs_processes"
PYTHON = REPO / ".bench" / "prepflow-text" / "bin" / "python"  # the text-only install

RUN = """
import sys
import prepflow.engine.executors.local as local
local.PROCESS_MIN_ROWS = int(sys.argv[1])
from prepflow.cli import main
sys.argv = ["prepflow", *sys.argv[2:]]
main()
"""


def build(rows: int, seed: int = 0) -> Path:
    path = WORK / f"input-{rows}.jsonl"
    if path.exists():
        return path
    docs = []
    for corpus in sorted(CORPORA.glob("*.jsonl")):
        with corpus.open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in f]
    rng = random.Random(seed)
    WORK.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            text = f"{rng.choice(docs)}\n\n(copy {i})"
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return path


def run(source: Path, processes: bool) -> float:
    threshold = "0" if processes else str(10**12)
    out, run_dir = WORK / "out.jsonl", WORK / "run"
    args = ["run", "text-pretrain-clean", "-i", str(source), "-o", str(out)]
    args += ["--run-dir", str(run_dir), "--fresh", "--workers", "2"]
    start = time.perf_counter()
    subprocess.run([str(PYTHON), "-c", RUN, threshold, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5000, 20000, 50000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not PYTHON.exists():
        sys.exit(f"{PYTHON} is missing: run benchmarks/text_pretrain_clean.py once to create it")
    print(f"{'rows':>8} {'threads s':>10} {'processes s':>12} {'processes/threads':>18}")
    for rows in args.rows:
        source = build(rows)
        walls = {
            mode: statistics.median(run(source, mode) for _ in range(args.repeat))
            for mode in (False, True)
        }
        print(
            f"{rows:>8,} {walls[False]:>10.2f} {walls[True]:>12.2f} "
            f"{walls[True] / walls[False]:>18.2f}"
        )


if __name__ == "__main__":
    main()
