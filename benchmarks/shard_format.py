"""The engine's shard file format: Arrow IPC files against the uncompressed Parquet used before.

Every (step, shard) a run computes is written to its run directory (kept, dropped and measured
rows) and read back by the next step, a global step's passes, the output writer and the report.
This script takes every shard table of a real `text-pretrain-clean` run and times writing them
all in each format, then reading them all back (best of ``--repeat``; one thread, then two
threads writing at once as a run's two workers do), with the size on disk.

Usage (input: the benchmark input of text_pretrain_clean.py, or any JSONL with a `text` column):

    .venv/bin/python benchmarks/shard_format.py [--input .bench/text_pretrain_clean/input.jsonl]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prepflow.data import shardfile
from prepflow.data.runstore import SHARD_KINDS, SIDE_KINDS, read_shard
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml, resolve_pipeline_path

REPO = Path(__file__).resolve().parents[1]
#: What intermediate shards were written with before the Arrow files: no compression, dictionary
#: or statistics (the fastest Parquet pyarrow writes).
PARQUET_OPTIONS = {"compression": "none", "use_dictionary": False, "write_statistics": False}


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, **PARQUET_OPTIONS)


def read_parquet(path: Path) -> pa.Table:
    with pq.ParquetFile(path) as f:
        return f.read()


FORMATS: dict[str, tuple[Callable[[pa.Table, Path], None], Callable[[Path], pa.Table]]] = {
    "parquet (uncompressed)": (write_parquet, read_parquet),
    "arrow ipc (shardfile)": (shardfile.write, shardfile.read),
}


def shard_tables(input_path: Path, work: Path) -> list[pa.Table]:
    """Every shard table of a text-pretrain-clean run on ``input_path`` (2 workers)."""
    run_dir = work / "run"
    run_pipeline(
        load_yaml(resolve_pipeline_path("text-pretrain-clean")),
        input=input_path,
        output=work / "out.jsonl",
        run_dir=run_dir,
        workers=2,
        progress=False,
    )
    kinds = (*SHARD_KINDS, *SIDE_KINDS)
    files = sorted(f for kind in kinds for f in (run_dir / kind).glob(f"*/*{shardfile.SUFFIX}"))
    return [read_shard(f) for f in files]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(tables: list[pa.Table], out: Path, name: str, repeat: int) -> str:
    """One table row: ``name``'s write, concurrent write and read times, and size on disk."""
    write, read = FORMATS[name]
    out.mkdir()

    def write_all(prefix: str) -> list[Path]:
        paths = [out / f"{prefix}{i}" for i in range(len(tables))]
        for table, path in zip(tables, paths, strict=True):
            write(table, path)
        return paths

    def two_threads() -> None:
        threads = [threading.Thread(target=write_all, args=(f"{t}-",)) for t in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    w = best(lambda: write_all(""), repeat)
    w2 = best(two_threads, repeat)
    paths = write_all("")
    r = best(lambda: [read(p) for p in paths], repeat)
    size = sum(p.stat().st_size for p in paths) / 2**20
    return f"| {name} | {w * 1e3:.1f} ms | {w2 * 1e3:.1f} ms | {r * 1e3:.1f} ms | {size:.1f} MiB |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, default=REPO / ".bench/text_pretrain_clean/input.jsonl")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tables = shard_tables(args.input, work)
        mib = sum(t.nbytes for t in tables) / 2**20
        print(f"{len(tables)} shard tables of a text-pretrain-clean run on {args.input.name}, "
              f"{mib:.1f} MiB in memory; {os.cpu_count()} cores, {platform.machine()}, "
              f"Python {platform.python_version()}, pyarrow {pa.__version__}")  # fmt: skip
        print("| format | write all | 2 threads, each writes all | read all | on disk |")
        print("|---|---|---|---|---|")
        for i, name in enumerate(FORMATS):
            print(measure(tables, work / f"format-{i}", name, args.repeat))


if __name__ == "__main__":
    main()
