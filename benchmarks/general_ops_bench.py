"""Throughput of the general operators (column ops, ExpressionFilter, Sample, Head, ExactDedup,
ExtractJsonFields) on real text, one operator at a time, in-process.

Usage: .venv/bin/python benchmarks/general_ops_bench.py [--rows 400000] [--batch-rows 10000]

Rows are the English and Chinese corpora from ../shared/data/corpora repeated to ``--rows``
(about a third are exact duplicates of an earlier row, so dedup has work to do), with a float
``score`` and an LLM-style JSON ``response`` column. Each operator runs over the same batches
once; global operators are timed over both passes (observe + run). Prints rows/s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson
import pyarrow as pa

from prepflow.core.operator import Operator
from prepflow.operators.general.columns import DropColumns, RenameColumns, SelectColumns
from prepflow.operators.general.dedup import ExactDedup
from prepflow.operators.general.expr import ExpressionFilter
from prepflow.operators.general.json_fields import ExtractJsonFields
from prepflow.operators.general.sample import Head, Sample

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpora"


def make_batches(rows: int, batch_rows: int) -> list[pa.Table]:
    docs = [
        orjson.loads(line)
        for p in sorted(CORPORA.glob("*.jsonl"))
        for line in p.read_bytes().splitlines()
    ]
    texts = [docs[i % len(docs)]["text"] for i in range(rows)]
    langs = [docs[i % len(docs)]["lang"] for i in range(rows)]
    table = pa.table(
        {
            "_id": pa.array(range(rows), pa.int64()),
            "text": texts,
            "lang": langs,
            "score": [(i * 7919 % 1000) / 1000 for i in range(rows)],
            "response": [
                orjson.dumps(
                    {"answer": {"value": i % 97}, "choices": [{"text": langs[i]}]}
                ).decode()
                for i in range(rows)
            ],
        }
    )
    return [table.slice(i, batch_rows) for i in range(0, rows, batch_rows)]


def timed(label: str, op: Operator, batches: list[pa.Table]) -> None:
    rows = sum(b.num_rows for b in batches)
    start = time.perf_counter()
    if op.is_global:
        for b in batches:
            op.observe(b)
        op.finalize()
    kept = sum(op.run_batch(b).kept.num_rows for b in batches)
    seconds = time.perf_counter() - start
    print(
        f"{label:<60} {rows:>8} rows  kept {kept:>8}  {seconds:6.2f} s  {rows / seconds:>11,.0f} rows/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    args = parser.parse_args()
    batches = make_batches(args.rows, args.batch_rows)
    avg = (
        sum(pa.compute.sum(pa.compute.utf8_length(b["text"])).as_py() for b in batches) / args.rows
    )
    print(f"{args.rows} rows in batches of {args.batch_rows}, text {avg:.0f} characters on average")
    expr = "len(text) >= 20 and lang == 'en' and score > 0.5"
    cases: list[tuple[str, Operator]] = [
        ("SelectColumns [text, lang]", SelectColumns(columns=["text", "lang"])),
        ("DropColumns [response]", DropColumns(columns=["response"])),
        ("RenameColumns {text: body}", RenameColumns(mapping={"text": "body"})),
        (f"ExpressionFilter {expr}", ExpressionFilter(expr=expr)),
        (
            "ExpressionFilter not (lang in ['zh']) and 'the' in text",
            ExpressionFilter(expr="not (lang in ['zh']) and 'the' in text"),
        ),
        ("Sample fraction=0.1", Sample(fraction=0.1)),
        ("Head n=1000 (global)", Head(n=1000)),
        ("ExactDedup [text] (global: observe + run)", ExactDedup(columns=["text"])),
        ("ExactDedup [text, lang] (global: observe + run)", ExactDedup(columns=["text", "lang"])),
        (
            "ExtractJsonFields 2 fields (int, string)",
            ExtractJsonFields(
                fields={"v": "answer.value", "c": "choices.0.text"}, types={"v": "int"}
            ).bind({"json": "response"}),
        ),
    ]
    for label, op in cases:
        timed(label, op, batches)


if __name__ == "__main__":
    main()
