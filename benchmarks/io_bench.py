"""Throughput of prepflow's data layer: JSONL ingest (plain and gzip) and final output writing.

Usage: .venv/bin/python benchmarks/io_bench.py [--rows 1000000] [--batch-rows 10000]

Writes a synthetic JSONL file of small rows (~90 bytes: an int id, a short text, a float, a
string label) to a temporary directory, then times each step once and prints rows/s. Reading
means streaming every row through ``open_input(...).iter_batches(batch_rows)``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa

from prepflow.data.readers import open_input
from prepflow.data.writers import write_output, write_shard_atomic

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "data",
    "flows",
    "through",
    "arrow",
]


def make_jsonl(path: Path, rows: int) -> None:
    with path.open("wb") as f:
        for start in range(0, rows, 100_000):
            f.write(
                b"".join(
                    orjson.dumps(
                        {
                            "id": i,
                            "text": " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6)),
                            "score": (i % 1000) / 7,
                            "label": "even" if i % 2 == 0 else "odd",
                        }
                    )
                    + b"\n"
                    for i in range(start, min(rows, start + 100_000))
                )
            )


def timed(label: str, rows: int, fn: Callable[[], int], repeat: int) -> None:
    """Run ``fn`` ``repeat`` times; print the best time (the machine is shared and noisy)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - start)
        assert got == rows, f"{label}: {got} rows, expected {rows}"
    best = min(times)
    print(f"{label:<36} {rows:>9} rows  best {best:6.2f} s  {rows / best:>11,.0f} rows/s")


def count(path: Path, batch_rows: int) -> int:
    return sum(b.num_rows for b in open_input(path).iter_batches(batch_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per step; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data.jsonl"
        make_jsonl(data, args.rows)
        mib = data.stat().st_size / 2**20
        print(f"input: {args.rows} rows, {mib:.0f} MiB JSONL, batch_rows={args.batch_rows}")
        gz = root / "data.jsonl.gz"
        with data.open("rb") as src, gzip.open(gz, "wb", 6) as dst:
            shutil.copyfileobj(src, dst)
        for path in (data, gz):
            read = functools.partial(count, path, args.batch_rows)
            timed(f"read {path.name}", args.rows, read, args.repeat)

        shards: list[Path] = []

        def write_shards() -> int:
            shards.clear()
            rows = 0
            for k, batch in enumerate(open_input(data).iter_batches(100_000)):
                batch = batch.append_column("_id", pa.array(range(rows, rows + len(batch))))
                shards.append(root / f"shard-{k:05d}.arrow")
                write_shard_atomic(batch, shards[-1])
                rows += batch.num_rows
            return rows

        timed("read jsonl + write shard files", args.rows, write_shards, args.repeat)
        for name in ("out.parquet", "out.jsonl", "out.json", "out.csv"):
            write = functools.partial(write_output, shards, root / name)
            timed(f"write_output {name}", args.rows, write, args.repeat)
        for name in ("out.parquet", "out.json", "out.csv"):
            read = functools.partial(count, root / name, args.batch_rows)
            timed(f"read {name}", args.rows, read, args.repeat)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        print(f"peak RSS of the whole benchmark: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
