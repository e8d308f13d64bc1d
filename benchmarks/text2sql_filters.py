"""The SQL executability and execution filters side by side with DataFlow's, on the same rows.

Rows: every gold and predicted query of the labelled comparator set (tests/operators/text2sql/
comparator_pairs.jsonl, on chinook, flights and penguins) repeated ``--repeat`` times, less the
pathological ones (each copy after the first with a trailing comment, so that no tool can
skip a repeated statement). Two runs:

* ``clean``: those rows. Both tools run EXPLAIN then execution; wall time, rows kept.
* ``pathological``: the same rows plus three queries that never end or never stop growing (an
  endless recursive count, a 3-way cross join of tracks, an endless recursive row stream).
  prepflow ends each within its time limit and drops it with the reason; DataFlow's per-query
  timeout only stops *waiting* (a warning) and then joins the worker threads, so its run does
  not end: it is killed after ``--limit`` seconds.

prepflow runs as ``prepflow run`` on a two-step YAML (timeout_s 5, as DataFlow's query
timeout; empty results kept, as DataFlow keeps them). DataFlow (PyPI open-dataflow 1.0.13)
runs in .bench/dataflow (created on first use).

Usage: .venv/bin/python benchmarks/text2sql_filters.py [--repeat 10] [--limit 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
WORK = REPO / ".bench" / "text2sql-filters"
PAIRS = REPO / "tests" / "operators" / "text2sql" / "comparator_pairs.jsonl"
DATA = REPO / "tests" / "data" / "text2sql" / "database"
CHINOOK = REPO.parent / "shared" / "data" / "sql" / "chinook.sqlite"
PATHOLOGICAL = [
    (
        "chinook",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    ),
    ("chinook", "SELECT count(*) FROM track a, track b, track c"),
    ("chinook", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"),
]
PIPELINE = """\
name: sql-filters
steps:
  - {op: SQLExecutabilityFilter, name: executable, params: {timeout_s: 5}}
  - {op: SQLExecutionFilter, name: execute, params: {timeout_s: 5, max_rows: 100000, allow_empty: true}}
"""


def db_root() -> Path:
    """One folder per database (<id>/<id>.sqlite), the layout both tools read."""
    root = WORK / "dbs"
    shutil.rmtree(root, ignore_errors=True)
    for db_id, path in [
        ("chinook", CHINOOK),
        *((p.name, p / f"{p.name}.sqlite") for p in DATA.iterdir()),
    ]:
        (root / db_id).mkdir(parents=True)
        (root / db_id / f"{db_id}.sqlite").symlink_to(path)
    return root


def rows(repeat: int, pathological: bool) -> list[tuple[str, str]]:
    pairs = [json.loads(line) for line in PAIRS.open()]
    slow = {p["pred"] for p in pairs if p["reason"] in ("timeout", "limit")}
    queries = [(p["db"], q) for p in pairs for q in (p["gold"], p["pred"]) if q not in slow]
    # copies differ by a trailing comment, so every row is a distinct statement for both tools
    out = [(d, q if k == 0 else f"{q} /* copy {k} */") for k in range(repeat) for d, q in queries]
    if pathological:
        out[len(out) // 2 : len(out) // 2] = PATHOLOGICAL
    return out


def run_prepflow(data: list[tuple[str, str]], root: Path, name: str) -> dict:
    src = WORK / f"{name}.jsonl"
    src.write_text(
        "".join(json.dumps({"database": str(root), "db_id": d, "sql": s}) + "\n" for d, s in data)
    )
    spec = WORK / "filters.yaml"
    spec.write_text(PIPELINE)
    out = WORK / f"{name}-prepflow.jsonl"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "prepflow"),
            "run",
            str(spec),
            "-i",
            str(src),
            "-o",
            str(out),
            "--run-dir",
            str(WORK / f"run-{name}"),
            "--fresh",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"prepflow failed: {proc.stderr[-2000:]}")
    report = json.loads((WORK / f"run-{name}" / "report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    return {
        "seconds": round(seconds, 2),
        "rows_in": len(data),
        "after_executability": steps["executable"]["kept"],
        "after_execution": steps["execute"]["kept"],
        "drop_reasons": {k: v for s in steps.values() for k, v in s["drop_reasons"].items()},
    }


def dataflow_python() -> Path:
    """The python of .bench/dataflow, the virtualenv benchmarks/text_pretrain_clean.py makes
    (run that first), plus the two packages DataFlow's Text2SQL modules import beyond it."""
    python = REPO / ".bench" / "dataflow" / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            "run benchmarks/text_pretrain_clean.py --only dataflow first (it makes .bench/dataflow)"
        )
    check = subprocess.run([str(python), "-c", "import pymysql, word2number"], capture_output=True)
    if check.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "pymysql", "word2number"], check=True
        )
    return python


def run_dataflow(data: list[tuple[str, str]], root: Path, name: str, limit: float) -> dict:
    src = WORK / f"{name}-dataflow.jsonl"
    src.write_text("".join(json.dumps({"db_id": d, "SQL": s}) + "\n" for d, s in data))
    work = WORK / f"dataflow-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(dataflow_python()),
            str(BENCH / "text2sql_filters_dataflow.py"),
            str(src),
            str(root),
            str(work),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        return {
            "seconds": None,
            "rows_in": len(data),
            "ended": f"killed after {limit:g} s, no output",
        }
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"seconds": round(seconds, 2), "ended": f"exit code {proc.returncode}"}
    result = json.loads(out.strip().splitlines()[-1])
    result["seconds_process"] = round(seconds, 2)
    return result


def main(repeat: int, limit: float, only: str | None) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    root = db_root()
    result = {}
    for name, patho in (("clean", False), ("pathological", True)):
        data = rows(repeat, patho)
        entry = {}
        if only in (None, "prepflow"):
            entry["prepflow"] = run_prepflow(data, root, name)
        if only in (None, "dataflow"):
            entry["dataflow"] = run_dataflow(data, root, name, limit)
        result[name] = entry
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores (shared), python {sys.version.split()[0]}"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--limit", type=float, default=300)
    parser.add_argument("--only", choices=["prepflow", "dataflow"])
    args = parser.parse_args()
    print(json.dumps(main(args.repeat, args.limit, args.only), indent=2))
