"""text2sql-synth with the embedded Qwen2.5-Coder-1.5B (llama.cpp, CPU): verified rows per minute.

Runs the shipped pipeline, as shipped except for ``n`` (queries per difficulty and database),
on chinook (shared data) and the built flights and penguins databases: SQL by difficulty ->
parse -> execute -> difficulty -> questions -> correspondence judge -> chain of thought with
execution voting checked against the gold result -> chat rows. A verified row is one in the
output: it ran, was judged to match its question, and its chain of thought's voted result
equals the gold result. Prints the funnel (kept per step, drop reasons) and rows per minute.

Usage: .venv/bin/python benchmarks/text2sql_synth.py [--n 1] [--model qwen2.5-coder-1.5b-instruct]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import yaml

from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".bench" / "text2sql-synth"
CHINOOK = REPO.parent / "shared" / "data" / "sql" / "chinook.sqlite"
DATA = REPO / "tests" / "data" / "text2sql"


def main(n: int, model: str) -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    src = WORK / "dbs.jsonl"
    rows = [{"database": str(CHINOOK)}] + [
        {"database": str(DATA), "db_id": d} for d in ("flights", "penguins")
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = yaml.safe_load((REPO / "prepflow" / "pipelines" / "text2sql-synth.yaml").read_text())
    spec["serving"] = {"backend": "llamacpp", "model": model}
    spec["steps"][0]["params"]["n"] = n
    out = WORK / "out.jsonl"
    start = time.perf_counter()
    report = run_pipeline(
        load_yaml(yaml.safe_dump(spec)),
        input=src,
        output=out,
        run_dir=WORK / "run",
        progress=False,
        max_failure_rate=1.0,
    )
    minutes = (time.perf_counter() - start) / 60
    verified = len(out.read_text().splitlines())
    return {
        "model": model,
        "databases": 3,
        "queries_asked": 3 * 4 * n,
        "verified_rows": verified,
        "minutes": round(minutes, 2),
        "verified_rows_per_minute": round(verified / minutes, 2),
        "funnel": {
            s["name"]: {
                "in": s["rows_in"],
                "kept": s["kept"],
                "out": s["rows_out"],
                "dropped": s["drop_reasons"],
                "failed": s["failed"],
            }
            for s in report.steps
        },
        "llm": report.llm,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = parser.parse_args()
    print(json.dumps(main(args.n, args.model), indent=2, default=str))
