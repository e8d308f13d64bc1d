"""CSV/TSV reading: typing, rows with the wrong field count by physical line, type drift, UTF-8."""

from __future__ import annotations

import pyarrow as pa
import pytest

from prepflow.core.errors import InputError
from prepflow.data import readers
from prepflow.data.readers import BadRecord, open_input

# Line 4-5 is one row with a quoted newline, so row numbers and line numbers differ after it.
WIDTHS = b'id,text\n1,one\n2\n3,"multi\nline"\n4,four,extra\n5,five\n'


def rows(path, on_bad=None, batch_rows: int = 100) -> list[dict]:
    return [r for b in open_input(path).iter_batches(batch_rows, on_bad) for r in b.to_pylist()]


def test_types_inferred_dates_kept_as_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"n,x,flag,day,empty,s\n1,1.5,true,2020-01-02,,a\n2,,false,2021-03-04,,\n")
    (batch,) = open_input(path).iter_batches(10)
    assert batch.schema == pa.schema(
        [
            ("n", pa.int64()),
            ("x", pa.float64()),
            ("flag", pa.bool_()),
            ("day", pa.string()),
            ("empty", pa.string()),
            ("s", pa.string()),
        ]
    )
    assert batch.to_pylist() == [
        {"n": 1, "x": 1.5, "flag": True, "day": "2020-01-02", "empty": "", "s": "a"},
        {"n": 2, "x": None, "flag": False, "day": "2021-03-04", "empty": "", "s": ""},
    ]


def test_wrong_field_counts_reported_with_physical_lines(tmp_path):
    path = tmp_path / "w.csv"
    path.write_bytes(WIDTHS)
    bad: list[BadRecord] = []
    assert rows(path, bad.append) == [
        {"id": 1, "text": "one"},
        {"id": 3, "text": "multi\nline"},
        {"id": 5, "text": "five"},
    ]
    assert [(b.path, b.line, b.reason, b.raw) for b in bad] == [
        (str(path), 3, "expected 2 fields, found 1", b"2"),
        (str(path), 6, "expected 2 fields, found 3", b"4,four,extra"),
    ]
    with pytest.raises(InputError) as err:
        rows(path)
    assert str(err.value) == f"{path}:3: expected 2 fields, found 1"


def test_column_that_outgrows_its_inferred_type_is_reread_as_text(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)  # first block: numbers only
    path = tmp_path / "drift.csv"
    lines = [b"%d,r%d" % (i, i) for i in range(20)] + [b"oops,r20", b"21,r21"]
    path.write_bytes(b"n,s\n" + b"\n".join(lines) + b"\n")
    batches = list(open_input(path).iter_batches(8))
    assert [b.num_rows for b in batches] == [8, 8, 6]
    assert batches[0].schema.field("n").type == pa.int64()
    assert batches[0].column("n").to_pylist() == list(range(8))
    assert batches[2].schema.field("n").type == pa.string()
    assert batches[2].column("n").to_pylist() == ["16", "17", "18", "19", "oops", "21"]
    assert [r for b in batches for r in b.column("s").to_pylist()] == [f"r{i}" for i in range(22)]


def test_tsv_and_invalid_utf8(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_bytes(b"a\tb\nx,y\t2\n")
    assert rows(tsv) == [{"a": "x,y", "b": 2}]
    bad_utf8 = tmp_path / "u.csv"
    bad_utf8.write_bytes(b"a,b\nok,1\nbad\xff,2\n")
    with pytest.raises(InputError) as err:
        rows(bad_utf8, on_bad=lambda r: None)  # not skippable: stops even in quarantine mode
    assert str(err.value) == f"{bad_utf8}:3: invalid UTF-8 in column 'a'"
