"""Content digests of tables: what makes a shard "the same" across runs, whatever the file's name,
size or modification time."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from prepflow.core.tables import int64_range


class _Hasher:
    """A write-only sink that hashes what Arrow's IPC writer writes into it."""

    def __init__(self) -> None:
        self.hash = hashlib.blake2b(digest_size=16)
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self.hash.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def table_digest(table: pa.Table) -> str:
    """A 128-bit digest of ``table``'s schema and values. The rows are copied into fresh buffers
    first, so that a slice and a table holding the same rows digest alike (Arrow's IPC writer
    would otherwise see the slice's offsets and surrounding bytes)."""
    fresh = table.take(int64_range(0, table.num_rows))
    sink = _Hasher()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), fresh.schema) as writer:
        writer.write_table(fresh)
    return sink.hash.hexdigest()
