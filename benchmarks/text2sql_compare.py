"""Comparator throughput: result checks per second on 2 cores.

1. The labelled pairs (tests/operators/text2sql/comparator_pairs.jsonl: 74 pairs on chinook,
   flights and penguins) executed once, then only ``compare_results`` timed, in a loop.
2. Larger results: 1,000-row, 5-column results (tracks of chinook), unordered and ordered, the
   predicted one with its columns permuted.
3. The judge end to end (gold and predicted SQL executed in the worker processes, gold results
   cached, as ``prepflow eval text2sql`` runs): pairs per second.

Usage: .venv/bin/python benchmarks/text2sql_compare.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql.compare import compare_results
from prepflow.operators.text2sql.judge import ExecutionJudge
from prepflow.sandbox.sql import open_database

REPO = Path(__file__).resolve().parents[1]
PAIRS = REPO / "tests" / "operators" / "text2sql" / "comparator_pairs.jsonl"
CHINOOK = REPO.parent / "shared" / "data" / "sql" / "chinook.sqlite"


def database(name: str):
    if name == "chinook":
        return open_database(CHINOOK, timeout_s=0.5, max_rows=5000)
    return open_database(REPO / "tests" / "data" / "text2sql", name, timeout_s=0.5, max_rows=5000)


def rate(fn, items: list, seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for item in items:
            fn(*item)
        done += len(items)
    return done / (time.perf_counter() - start)


def main(seconds: float) -> dict:
    pairs = [json.loads(line) for line in PAIRS.open()]
    dbs = {name: database(name) for name in {p["db"] for p in pairs}}
    prepared = []
    for p in pairs:
        db = dbs[p["db"]]
        run = ExecutionJudge(db, timeout_s=0.5, max_rows=5000).gold(p["gold"])
        prepared.append(
            (run.result, db.execute(p["pred"], timeout_s=0.5, max_rows=5000), run.order)
        )
    labelled = rate(lambda g, p, o: compare_results(g, p, o), prepared, seconds)

    chinook = dbs["chinook"]
    cols = "id, name, album, milliseconds, unit_price"
    gold = chinook.execute(f"SELECT {cols} FROM track LIMIT 1000")
    pred = chinook.execute("SELECT unit_price, milliseconds, album, name, id FROM track LIMIT 1000")
    gold_ordered = chinook.execute(f"SELECT {cols} FROM track ORDER BY milliseconds LIMIT 1000")
    pred_ordered = chinook.execute(
        "SELECT unit_price, milliseconds, album, name, id FROM track ORDER BY milliseconds LIMIT 1000"
    )
    order = sqltools.gold_order(f"SELECT {cols} FROM track ORDER BY milliseconds LIMIT 1000")
    big = rate(
        lambda g, p, o: compare_results(g, p, o),
        [(gold, pred, sqltools.gold_order("SELECT 1"))],
        seconds,
    )
    big_ordered = rate(
        lambda g, p, o: compare_results(g, p, o), [(gold_ordered, pred_ordered, order)], seconds
    )

    judges = {name: ExecutionJudge(db, timeout_s=0.5, max_rows=5000) for name, db in dbs.items()}
    fast = [p for p in pairs if p["reason"] not in ("timeout",)]  # a timeout costs its 0.5 s
    start = time.perf_counter()
    for p in fast:
        judges[p["db"]].judge(p["gold"], p["pred"])
    end_to_end = len(fast) / (time.perf_counter() - start)
    return {
        "labelled_pairs_checks_per_s": round(labelled),
        "1000_rows_5_cols_unordered_checks_per_s": round(big, 1),
        "1000_rows_5_cols_ordered_checks_per_s": round(big_ordered, 1),
        "judge_end_to_end_pairs_per_s": round(end_to_end, 1),
        "pairs": len(pairs),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    print(json.dumps(main(parser.parse_args().seconds), indent=2))
