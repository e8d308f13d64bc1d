"""write_output / write_shard_atomic: round trips, schema unification across shards, atomicity."""

from __future__ import annotations

import json
import sys

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prepflow.core.errors import ConfigError
from prepflow.data.readers import open_input
from prepflow.data.writers import write_output, write_shard_atomic

ROWS = [
    {"_id": 0, "text": 'héllo, "world"\nline 2', "n": 1, "score": 0.5, "ok": True},
    {"_id": 1, "text": "中文", "n": None, "score": None, "ok": False},
    {"_id": 2, "text": "", "n": -3, "score": 2.0, "ok": None},
]
OUT = [{k: v for k, v in r.items() if k != "_id"} for r in ROWS]


def shards(tmp_path, *tables: pa.Table) -> list:
    paths = []
    for k, table in enumerate(tables):
        paths.append(tmp_path / "shards" / f"{k:05d}.arrow")
        write_shard_atomic(table, paths[-1])
    return paths


def read_back(path, format=None) -> list[dict]:
    source = open_input(path, format=format)
    return [r for b in source.iter_batches(2) for r in b.to_pylist()]


@pytest.mark.parametrize(
    "name",
    ["out.jsonl", "out.json", "out.parquet", "out.csv", "out.tsv", "out.jsonl.gz", "out.csv.gz"],
)
def test_round_trip_every_file_format(tmp_path, name):
    parts = shards(tmp_path, pa.Table.from_pylist(ROWS[:2]), pa.Table.from_pylist(ROWS[2:]))
    assert write_output(parts, tmp_path / name) == 3
    assert read_back(tmp_path / name) == OUT
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_round_trip_hf_directory(tmp_path):
    pytest.importorskip("datasets")
    parts = shards(tmp_path, pa.Table.from_pylist(ROWS))
    target = f"{tmp_path}/hf_out/"
    assert write_output(parts, target) == 3
    assert open_input(target).format == "hf"
    assert read_back(target) == OUT
    assert write_output(parts[:0], target, format="hf") == 0  # replaces the existing directory
    assert read_back(target) == []


def test_hf_refuses_types_datasets_cannot_hold(tmp_path):
    pytest.importorskip("datasets")
    parts = shards(
        tmp_path, pa.table({"m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64()))})
    )
    with pytest.raises(ConfigError, match=r"datasets format cannot hold this data .*map"):
        write_output(parts, tmp_path / "ds", format="hf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_hf_without_datasets_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    parts = shards(tmp_path, pa.Table.from_pylist(ROWS))
    with pytest.raises(ConfigError, match=r"pip install prepflow\[hf\]"):
        write_output(parts, tmp_path / "ds", format="hf")
    assert not (tmp_path / "ds").exists()


def test_exact_text_of_json_outputs(tmp_path):
    parts = shards(tmp_path, pa.table({"_id": [0, 1], "a": [1, None], "b": [[1], []]}))
    write_output(parts, tmp_path / "o.jsonl")
    write_output(parts, tmp_path / "o.json")
    write_output(parts, tmp_path / "o.csv")
    assert (tmp_path / "o.jsonl").read_text() == '{"a":1,"b":[1]}\n{"a":null,"b":[]}\n'
    assert (tmp_path / "o.json").read_text() == '[\n{"a":1,"b":[1]},\n{"a":null,"b":[]}\n]\n'
    assert (tmp_path / "o.csv").read_text() == '"a","b"\n1,"[1]"\n,"[]"\n'
    write_output([], tmp_path / "empty.json")
    assert json.loads((tmp_path / "empty.json").read_text()) == []


def test_shards_with_different_schemas_are_unified(tmp_path):
    parts = shards(
        tmp_path,
        pa.table({"_id": [0], "a": [1], "b": pa.nulls(1)}),
        pa.table({"_id": [1], "a": [2.5], "b": ["x"], "late": [True]}),
        pa.table({"_id": [2], "a": ["text"], "b": pa.nulls(1, pa.string())}),
    )
    write_output(parts, tmp_path / "o.parquet")
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.schema == pa.schema([("a", pa.string()), ("b", pa.string()), ("late", pa.bool_())])
    assert table.to_pylist() == [
        {"a": "1", "b": None, "late": None},  # each value's own text, not a float's
        {"a": "2.5", "b": "x", "late": True},
        {"a": "text", "b": None, "late": None},
    ]
    write_output(parts[:2], tmp_path / "o2.parquet", drop_columns=())
    assert pq.read_table(tmp_path / "o2.parquet").to_pylist() == [
        {"_id": 0, "a": 1.0, "b": None, "late": None},
        {"_id": 1, "a": 2.5, "b": "x", "late": True},
    ]


def test_failed_write_leaves_the_old_output_and_no_temp(tmp_path):
    parts = shards(tmp_path, pa.Table.from_pylist(ROWS))
    target = tmp_path / "out" / "o.jsonl"
    write_output(parts, target)
    before = target.read_bytes()
    broken = tmp_path / "broken.arrow"
    broken.write_bytes(b"not an arrow file")
    with pytest.raises(pa.ArrowInvalid):
        write_output([*parts, broken], target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["o.jsonl"]


def test_json_cannot_hold_bytes(tmp_path):
    parts = shards(tmp_path, pa.table({"blob": [b"\x00\x01"]}))
    with pytest.raises(ConfigError, match=r"cannot write as JSON .*bytes.*; write Parquet"):
        write_output(parts, tmp_path / "o.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_output_format_errors(tmp_path):
    parts = shards(tmp_path, pa.Table.from_pylist(ROWS))
    with pytest.raises(ConfigError, match=r"cannot tell the output format of .*out\.xml"):
        write_output(parts, tmp_path / "out.xml")
    with pytest.raises(ConfigError, match=r"format 'txt' is an input format only"):
        write_output(parts, tmp_path / "out.txt")
    with pytest.raises(ConfigError, match=r"format 'parquet' cannot be wrapped in gzip"):
        write_output(parts, tmp_path / "out.parquet.gz")
    assert write_output(parts, tmp_path / "out.txt", format="jsonl") == 3


def test_a_shard_is_replaced_whole_and_the_output_may_be_an_fsspec_url(tmp_path):
    path = tmp_path / "shards" / "0.arrow"
    write_shard_atomic(pa.Table.from_pylist(ROWS), path)
    write_shard_atomic(pa.Table.from_pylist(ROWS[:1]), path)
    assert [p.name for p in path.parent.iterdir()] == ["0.arrow"]  # no temporary file left
    fs = fsspec.filesystem("memory")
    try:
        assert write_output([path], "memory://prepflow-w/o.jsonl.gz") == 1
        assert read_back("memory://prepflow-w/o.jsonl.gz") == OUT[:1]
    finally:
        fs.rm("/prepflow-w", recursive=True)
