"""The schema drift rule and file-name inference, on their own."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fsspec.compression import compr

from prepflow.core.errors import ConfigError, InputError
from prepflow.data.formats import FileKind, file_kind
from prepflow.data.readers import open_input
from prepflow.data.schema import concat_tables, conform, rows_to_table, unify_schemas
from prepflow.data.writers import write_output


def test_unify_promotes_and_falls_back_to_text_per_column():
    schema = unify_schemas(
        [
            pa.schema(
                [("i", pa.int64()), ("s", pa.struct([("x", pa.int64())])), ("c", pa.int64())]
            ),
            pa.schema(
                [("i", pa.float64()), ("s", pa.struct([("y", pa.string())])), ("c", pa.string())]
            ),
            pa.schema([("n", pa.null()), ("i", pa.null())], metadata={b"k": b"v"}),
        ]
    )
    assert schema == pa.schema(
        [
            ("i", pa.float64()),
            ("s", pa.struct([("x", pa.int64()), ("y", pa.string())])),
            ("c", pa.string()),
            ("n", pa.null()),
        ]
    )
    assert schema.metadata is None


def test_conform_fills_casts_and_writes_json_text():
    schema = pa.schema([("a", pa.string()), ("b", pa.float64()), ("missing", pa.int64())])
    table = pa.table({"b": [1, 2], "a": pa.array([{"k": 1.5}, None]), "extra": [0, 0]})
    assert conform(table, schema).to_pylist() == [
        {"a": '{"k":1.5}', "b": 1.0, "missing": None},
        {"a": None, "b": 2.0, "missing": None},
    ]


def test_concat_tables_with_conflicting_types_keeps_every_value():
    tables = [pa.table({"v": [1, 2]}), pa.table({"v": [True]}), pa.table({"v": [0.5], "w": ["x"]})]
    joined = concat_tables(tables)
    assert joined.to_pylist() == [
        {"v": "1", "w": None},
        {"v": "2", "w": None},
        {"v": "true", "w": None},
        {"v": "0.5", "w": "x"},
    ]


def test_rows_to_table_keeps_late_keys_and_empty_objects():
    table = rows_to_table([{"a": 1}, {"b": "x"}, {"a": 2.5, "b": None}])
    assert table.column_names == ["a", "b"]
    assert table.to_pylist() == [
        {"a": 1.0, "b": None},
        {"a": None, "b": "x"},
        {"a": 2.5, "b": None},
    ]
    assert rows_to_table([{}, {}]).num_rows == 2


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a/b.jsonl", FileKind("jsonl")),
        ("B.NDJSON", FileKind("jsonl")),
        ("x.json.gz", FileKind("json", "gzip")),
        ("x.jsonl.zst", FileKind("jsonl", "zstd")),
        ("t.tsv.bz2", FileKind("csv", "bz2", "\t")),
        ("p.parquet", FileKind("parquet")),
        ("memory://d/c.csv", FileKind("csv")),
        ("data.gz", FileKind(None, "gzip")),
        (".jsonl", FileKind(None)),
        ("README", FileKind(None)),
    ],
)
def test_file_kind(name, kind):
    assert file_kind(name) == kind


def test_missing_codec_is_named(tmp_path):
    if "zstd" in compr:
        pytest.skip("zstandard is installed")
    path = tmp_path / "a.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(InputError, match=r"zstd compression needs `pip install zstandard`"):
        open_input(path)
    with pytest.raises(ConfigError, match=r"zstd compression needs `pip install zstandard`"):
        write_output([], tmp_path / "out.jsonl.zst")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl.zst"]
