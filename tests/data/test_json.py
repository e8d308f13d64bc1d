"""JSON (top-level array) reading: streaming split, element index and line of each bad element."""

from __future__ import annotations

import io
import json

import pytest

from prepflow.core.errors import InputError
from prepflow.data.json_array import read_json
from prepflow.data.readers import BadRecord, open_input

TRICKY = [
    {"id": 0, "text": 'brackets ] } [ { and "quotes", commas'},
    {"id": 1, "text": "back\\slash\\", "nested": {"lists": [[1], [2, 3]], "x": "]"}},
    {"id": 2, "text": "中文 and emoji 🎉"},
]


def read(data: bytes, block_bytes: int, on_bad=None) -> list[dict]:
    tables = read_json(io.BytesIO(data), "mem.json", on_bad, block_bytes)
    return [r for t in tables for r in t.to_pylist()]


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_array_elements_survive_any_block_split(block_bytes, indent):
    data = json.dumps(TRICKY, indent=indent, ensure_ascii=False).encode()
    got = read(data, block_bytes)
    assert [r["text"] for r in got] == [r["text"] for r in TRICKY]
    assert got[1]["nested"] == TRICKY[1]["nested"]
    assert got[0]["nested"] is None  # a key missing from some elements reads as null


def test_empty_arrays_and_files():
    assert read(b"[]", 4) == []
    assert read(b"  [\n ]\n", 4) == []
    assert read(b"", 4) == []


def test_bad_elements_named_by_index_and_line():
    data = b'[\n  {"a": 1},\n  42,\n  [1],\n  {"a": tru},\n  {"a": 3},\n]\n'
    bad: list[BadRecord] = []
    assert read(data, 8, bad.append) == [{"a": 1}, {"a": 3}]
    assert [(b.line, b.reason, b.raw) for b in bad] == [
        (3, "array index 1: expected a JSON object, got a number", b"42"),
        (4, "array index 2: expected a JSON object, got an array", b"[1]"),
        (
            5,
            "array index 3: invalid JSON at column 7: invalid literal, expected 'true'",
            b'{"a": tru}',
        ),
        (7, "array index 5: empty element (stray comma)", b""),
    ]
    with pytest.raises(InputError, match=r"^mem\.json:3: array index 1: expected a JSON object"):
        read(data, 8)


@pytest.mark.parametrize(
    ("data", "line", "reason", "raw"),
    [
        (
            b'[{"a": 1},\n{"a": 2}',
            2,
            "truncated JSON array: the file ends before the closing ']'",
            b'{"a": 2}',
        ),
        (
            b'[{"a": 1},\n{"a": "2',
            2,
            "truncated JSON array: the file ends inside a string",
            b'{"a": "2',
        ),
        (b'[{"a": 1},\n{"a": 2]]', 2, "mismatched ']'", b'{"a": 2]'),
        (b'[{"a": 1}]\n\nxyz', 3, "unexpected data after the closing ']'", b"xyz"),
        (b'[{"a": 1},\n }]', 2, "unexpected '}'", b"}"),
    ],
)
def test_broken_structure_stops_the_file_with_its_line(data, line, reason, raw):
    bad: list[BadRecord] = []
    assert read(data, 5, bad.append) == [{"a": 1}]
    assert [(b.line, b.reason, b.raw) for b in bad] == [(line, reason, raw)]


def test_json_lines_under_a_json_name_and_other_top_levels(tmp_path):
    path = tmp_path / "lines.json"  # what datasets' to_json() writes
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    assert [r for b in open_input(path).iter_batches(10) for r in b.to_pylist()] == [
        {"a": 1},
        {"a": 2},
    ]
    with pytest.raises(InputError, match=r"^mem\.json:2: expected a JSON array of objects"):
        read(b'\n  "just a string"', 64)


@pytest.mark.parametrize("block_bytes", [50, 4096, 1 << 20])
def test_long_array_with_one_bad_element_and_decoy_cuts(block_bytes):
    """Elements whose strings contain `},` (a wrong cut for the fast path) and one bad element
    deep inside: every good element comes out once, in order, and the bad one has its line."""
    elements = [
        json.dumps({"i": i, "t": "decoy },{ cut" if i % 7 == 0 else f"r{i}"}) for i in range(3000)
    ]
    elements[1234] = '{"i": 1234, "t": oops}'
    data = ("[\n" + ",\n".join(elements) + "\n]\n").encode()
    bad: list[BadRecord] = []
    got = read(data, block_bytes, bad.append)
    assert [r["i"] for r in got] == [i for i in range(3000) if i != 1234]
    assert got[7]["t"] == "decoy },{ cut" and got[8]["t"] == "r8"
    assert [(b.line, b.reason) for b in bad] == [
        (
            1236,
            "array index 1234: invalid JSON at column 18: unexpected character, expected a JSON value",
        )
    ]
