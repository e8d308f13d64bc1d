"""10-step row-wise pipeline over N rows: end-to-end rows/s, per-step rows/s and peak RSS.

Runs the real CLI (`prepflow run`) in a child process per size and reads its peak RSS from
getrusage, so the figure is the whole run: ingest, ten steps with their shard files, output.

    .venv/bin/python benchmarks/engine_rowwise.py --rows 1000000 4000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """
name: rowwise10
steps:
  - {op: ExpressionFilter, name: nonempty, params: {expr: "len(text) > 0"}}
  - {op: RenameColumns, name: to_body, params: {mapping: {text: body}}}
  - {op: ExpressionFilter, name: min_score, params: {expr: "score >= 0.02"}}
  - {op: Sample, name: sample, params: {fraction: 0.99, seed: 1}}
  - {op: RenameColumns, name: to_text, params: {mapping: {body: text}}}
  - {op: DropColumns, name: drop_lang, params: {columns: [lang]}}
  - {op: ExpressionFilter, name: id_mod, params: {expr: "id % 7 != 3"}}
  - {op: SelectColumns, name: select, params: {columns: [id, text, score]}}
  - {op: ExpressionFilter, name: max_score, params: {expr: "score < 0.999"}}
  - {op: RenameColumns, name: to_quality, params: {mapping: {score: quality}}}
"""

WORDS = [
    "data",
    "pipeline",
    "token",
    "model",
    "train",
    "clean",
    "filter",
    "dedup",
    "shard",
    "stream",
    "arrow",
    "batch",
]


def make_input(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
            f.write(
                json.dumps({"id": i, "text": text, "score": round(rng.random(), 4), "lang": "en"})
                + "\n"
            )


def run(rows: int, work: Path) -> dict:
    src = work / f"in-{rows}.jsonl"
    if not src.exists():
        make_input(src, rows)
    pipe = work / "rowwise10.yaml"
    pipe.write_text(PIPELINE)
    run_dir, out = work / f"run-{rows}", work / f"out-{rows}.parquet"
    cmd = [
        sys.executable,
        "-m",
        "prepflow.cli",
        "run",
        str(pipe),
        "--input",
        str(src),
        "--output",
        str(out),
        "--run-dir",
        str(run_dir),
        "--fresh",
        "--no-progress",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:
        print(
            "warning: peak RSS not above an earlier child's; run one size per invocation",
            file=sys.stderr,
        )
    report = json.loads((run_dir / "report.json").read_text())
    steps = {
        s["name"]: round(s["rows_in"] / s["seconds"]) if s["seconds"] else None
        for s in report["steps"]
    }
    return {
        "rows": rows,
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "output_rows": report["output_rows"],
        "step_rows_per_s": steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="prepflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.rows:  # one child per size: ru_maxrss of children is a running maximum
        out = (
            subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--work", str(work)],
                check=True,
                capture_output=True,
                text=True,
            )
            if "--one" not in sys.argv
            else None
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(run(int(sys.argv[2]), Path(sys.argv[4]))))
    else:
        main()
