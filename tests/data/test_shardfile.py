"""The engine's shard files: what is written is what is read, schema metadata included, and a
table read from a shard stays whole when the shard is rewritten or deleted."""

from __future__ import annotations

import pyarrow as pa

from prepflow.data import shardfile
from prepflow.data.writers import write_shard_atomic


def test_a_shard_reads_back_as_written_with_its_metadata(tmp_path):
    table = pa.table(
        {"_id": [0, 1, 2], "text": ["héllo", None, "中文" * 1000], "m": [[1.5], [], None]}
    ).replace_schema_metadata({"rules": '[{"column": "m"}]'})
    path = tmp_path / f"shard-00000{shardfile.SUFFIX}"
    write_shard_atomic(table, path)
    assert shardfile.read(path).equals(table, check_metadata=True)
    assert shardfile.schema(path) == table.schema
    assert shardfile.schema(path).metadata == {b"rules": b'[{"column": "m"}]'}


def test_a_table_read_from_a_shard_outlives_the_file(tmp_path):
    path = tmp_path / f"shard-00000{shardfile.SUFFIX}"
    write_shard_atomic(pa.table({"text": ["old"] * 10_000}), path)
    old = shardfile.read(path)  # memory-mapped
    write_shard_atomic(pa.table({"text": ["new"]}), path)  # a recomputed shard replaces it
    assert old["text"].unique().to_pylist() == ["old"] and old.num_rows == 10_000
    assert shardfile.read(path)["text"].to_pylist() == ["new"]
    path.unlink()
    assert old["text"][9_999].as_py() == "old"
