"""JSON Lines reading: fast path, malformed lines with file:line, schema drift, compression."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pytest

from prepflow.core.errors import InputError
from prepflow.data import readers
from prepflow.data.jsonl import read_jsonl
from prepflow.data.readers import BadRecord, open_input

MALFORMED = (
    b'{"id": 1, "text": "one"}\n'
    b'{"id": 2, "text": "tw\n'  # truncated
    b"\n"  # blank: not data, skipped silently
    b"[1, 2]\n"
    b"42\n"
    b'{"id": 3, "text": "\xff\xfe"}\n'  # bad UTF-8
    b'{"id": 4, "text": "four"}\n'
    b'{"id": 5, "text": tru}\n'
    b'{"id": 6, "text": "six"}'  # no final newline
)
MALFORMED_BAD = [
    (2, "truncated JSON record (unexpected end of data at column 22)", b'{"id": 2, "text": "tw'),
    (4, "expected a JSON object, got an array", b"[1, 2]"),
    (5, "expected a JSON object, got a number", b"42"),
    (6, "invalid UTF-8 (byte 0xff at offset 19)", b'{"id": 3, "text": "\xff\xfe"}'),
    (8, "invalid JSON at column 19: invalid literal, expected 'true'", b'{"id": 5, "text": tru}'),
]


def rows(path, batch_rows: int = 1000, on_bad=None) -> list[dict]:
    return [r for b in open_input(path).iter_batches(batch_rows, on_bad) for r in b.to_pylist()]


def test_reads_every_row_in_order_with_exact_batch_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 64)  # many blocks, batches across them
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(b'{"n": %d, "s": "r%d"}\n' % (i, i) for i in range(25)))
    batches = list(open_input(path).iter_batches(7))
    assert [b.num_rows for b in batches] == [7, 7, 7, 4]
    assert [r["n"] for b in batches for r in b.to_pylist()] == list(range(25))
    assert batches[0].to_pylist()[:2] == [{"n": 0, "s": "r0"}, {"n": 1, "s": "r1"}]


@pytest.mark.parametrize("block_bytes", [16, 1 << 20])
def test_malformed_lines_are_reported_and_good_rows_survive(tmp_path, monkeypatch, block_bytes):
    monkeypatch.setattr(readers, "BLOCK_BYTES", block_bytes)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(MALFORMED)
    bad: list[BadRecord] = []
    got = rows(path, 2, bad.append)
    assert got == [{"id": i, "text": t} for i, t in [(1, "one"), (4, "four"), (6, "six")]]
    assert [(b.line, b.reason, b.raw) for b in bad] == MALFORMED_BAD
    assert {b.path for b in bad} == {str(path)}


def test_malformed_line_raises_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(MALFORMED)
    with pytest.raises(InputError) as err:
        rows(path)
    assert (err.value.path, err.value.line) == (str(path), 2)
    assert str(err.value) == f"{path}:2: {MALFORMED_BAD[0][1]}"


def test_blank_and_crlf_lines_and_bom(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n   \n{"a": 2}\r\n\n')
    bad: list[BadRecord] = []
    assert rows(path, on_bad=bad.append) == [{"a": 1}, {"a": 2}]
    assert bad == []


def test_schema_drift_across_blocks_keeps_every_value(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BLOCK_BYTES", 24)  # one or two lines per block
    path = tmp_path / "drift.jsonl"
    path.write_bytes(
        b'{"v": 1}\n{"v": 2.5}\n{"v": null}\n{"v": 3, "late": [1]}\n{"v": "x"}\n{"v": {"k": 1}}\n'
    )
    batches = list(open_input(path).iter_batches(3))
    assert batches[0].schema == pa.schema([("v", pa.float64())])
    assert batches[0].to_pylist() == [{"v": 1.0}, {"v": 2.5}, {"v": None}]
    assert batches[1].schema == pa.schema([("v", pa.string()), ("late", pa.list_(pa.int64()))])
    assert batches[1].to_pylist() == [
        {"v": "3", "late": [1]},
        {"v": "x", "late": None},
        {"v": '{"k":1}', "late": None},
    ]


def test_type_conflict_inside_one_block_becomes_json_text(tmp_path):
    path = tmp_path / "conflict.jsonl"
    path.write_bytes(b'{"v": 1, "w": true}\n{"v": "one"}\n{"v": [1, 2], "w": false}\n')
    (batch,) = open_input(path).iter_batches(10)
    assert batch.schema == pa.schema([("v", pa.string()), ("w", pa.bool_())])
    assert batch.to_pylist() == [
        {"v": "1", "w": True},
        {"v": "one", "w": None},
        {"v": "[1,2]", "w": False},
    ]


def test_timestamp_like_strings_stay_strings(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"d": "2020-01-01", "m": {"at": "2021-02-03 04:05:06"}}\n')
    (batch,) = open_input(path).iter_batches(10)
    assert batch.to_pylist() == [{"d": "2020-01-01", "m": {"at": "2021-02-03 04:05:06"}}]
    assert batch.schema.field("m").type == pa.struct([("at", pa.string())])


def test_line_longer_than_a_block(monkeypatch):
    long_text = "x" * 5000
    data = b'{"a": 1}\n{"a": 2, "t": "%s"}\n{"a": 3}\n' % long_text.encode()
    tables = list(read_jsonl(io.BytesIO(data), "mem", None, block_bytes=100))
    got = [r for t in tables for r in t.to_pylist()]
    assert [r["a"] for r in got] == [1, 2, 3]
    assert got[1]["t"] == long_text


def test_gzip_jsonl_and_real_chinese_corpus(tmp_path, shared_data):
    corpus = shared_data / "corpora" / "fortunes_zh.jsonl"
    raw = corpus.read_bytes()
    line_count = raw.count(b"\n")  # what `wc -l` prints
    gz = tmp_path / "fortunes_zh.jsonl.gz"
    gz.write_bytes(gzip.compress(raw))
    plain = [b for b in open_input(corpus).iter_batches(1000)]
    assert sum(b.num_rows for b in plain) == line_count
    assert plain[0].schema == pa.schema(
        [("text", pa.string()), ("lang", pa.string()), ("source", pa.string())]
    )
    zipped = open_input(gz)
    assert zipped.format == "jsonl"
    assert pa.concat_tables(zipped.iter_batches(1000)).equals(pa.concat_tables(plain))


def test_every_shared_corpus_through_a_glob(shared_data):
    corpora = sorted((shared_data / "corpora").glob("*.jsonl"))
    source = open_input(shared_data / "corpora" / "*.jsonl")
    assert source.paths == [str(p) for p in corpora]
    batches = list(source.iter_batches(5000))
    assert sum(b.num_rows for b in batches) == sum(p.read_bytes().count(b"\n") for p in corpora)
    assert all(b.num_rows == 5000 for b in batches[:-1])
    assert {r["lang"] for b in batches for r in b.select(["lang"]).to_pylist()} == {"en", "zh"}


def test_empty_objects_are_rows(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"{}\n" * 5)
    assert [b.num_rows for b in open_input(path).iter_batches(2)] == [2, 2, 1]
    path.write_bytes(b'{}\n{"a": 1}\n{}\n')
    (batch,) = open_input(path).iter_batches(3)
    assert batch.to_pylist() == [{"a": None}, {"a": 1}, {"a": None}]
