"""The engine's shard files: Arrow IPC files (Feather v2), uncompressed.

A shard is written once by the step that made it and read back by the next step, a global
step's passes, the output writer, the report and the dashboard, on the same disk. Arrow's own
layout writes in half the time of uncompressed Parquet and reads 5x faster, memory-mapped and
without a copy (``benchmarks/shard_format.py``), at the same size on disk. Any Arrow reader opens
it: ``pyarrow.feather.read_table``, ``polars.read_ipc``, DuckDB's ``arrow`` extension.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.ipc as ipc

SUFFIX = ".arrow"


def write(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write ``table`` at ``path`` (callers make it atomic: see ``writers.write_shard_atomic``)."""
    with pa.OSFile(os.fspath(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read(path: str | os.PathLike[str], columns: Iterable[str] | None = None) -> pa.Table:
    """The shard at ``path`` (only those of ``columns`` it has, when given), memory-mapped:
    selecting columns copies nothing, and only the pages of the columns used are ever read."""
    with pa.memory_map(os.fspath(path)) as source:
        table = ipc.open_file(source).read_all()
    if columns is None:
        return table
    return table.select([c for c in columns if c in table.schema.names])


def schema(path: str | os.PathLike[str]) -> pa.Schema:
    """The shard's schema, with its metadata, read from the file's footer alone."""
    with pa.memory_map(os.fspath(path)) as source:
        return ipc.open_file(source).schema
