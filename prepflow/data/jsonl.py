"""JSON Lines reader.

The fast path hands newline-aligned byte blocks of a few MiB to pyarrow's multi-threaded JSON
parser. Only a block that pyarrow rejects (or whose bytes are not valid UTF-8) is parsed again line
by line with orjson, to find the exact line and reason of each bad record; the good lines of that
block are kept. Blank lines are not records and are skipped.

Schema drift: each block gets its own inferred schema (a key that appears late is a new column,
int in one block and float in the next stays as found); tables are unified downstream by
``prepflow.data.schema`` rules, and a block whose lines Arrow cannot type together (a field that is
a number on one line and a string on another) becomes a JSON-text column, never a crash or a loss.
pyarrow would read ISO-8601-looking strings as timestamps; they are kept as the strings they are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from prepflow.core.tables import string_array
from prepflow.data.records import OnBad, report
from prepflow.data.schema import rows_to_table

BLOCK_BYTES = 8 << 20
"""Bytes of input handed to one pyarrow parse; bounds memory (a longer line grows its block)."""
#: The smallest piece of a block that pyarrow parses on a thread of its own (its unit of
#: parallelism): a block is split into a piece per core, none smaller than this.
_MIN_PARSE_PIECE = 1 << 20
BOM = b"\xef\xbb\xbf"
#: Deepest nesting of arrays and objects inside a record that prepflow keeps: Parquet stores at
#: most 99 levels and an array takes two, so a deeper record is malformed input (file:line, or
#: quarantined), never a crash when its shard is written or read.
MAX_DEPTH = 48
_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError)


def read_jsonl(
    f: IO[bytes], path: str, on_bad: OnBad | None, block_bytes: int = BLOCK_BYTES
) -> Iterator[pa.Table]:
    """Stream the records of a JSON Lines file as tables (one per block)."""
    for first_line, block in line_blocks(f, block_bytes):
        table = _parse_block(block, path, first_line, on_bad)
        if table is not None and table.num_rows:
            yield table


def line_blocks(f: IO[bytes], block_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) of consecutive newline-aligned blocks of ``f``."""
    line, rest = 1, b""
    while chunk := f.read(block_bytes):
        data = rest + chunk if rest else chunk
        if line == 1 and not rest:
            data = data.removeprefix(BOM)
        cut = data.rfind(b"\n") + 1
        if not cut:
            rest = data
            continue
        block, rest = data[:cut], data[cut:]
        yield line, block
        line += block.count(b"\n")
    if rest:
        yield line, rest


def _parse_block(block: bytes, path: str, first_line: int, on_bad: OnBad | None) -> pa.Table | None:
    try:
        _check_utf8(block)
        table = _arrow_parse(block)
    except _PARSE_ERRORS:
        return _parse_lines(block, path, first_line, on_bad)
    if max((type_depth(f.type) for f in table.schema), default=0) > MAX_DEPTH:
        return _parse_lines(block, path, first_line, on_bad)  # find the records too deep
    return table


def type_depth(t: pa.DataType) -> int:
    """Levels of arrays and objects in an Arrow type (a scalar: 0)."""
    children = _children(t)
    return 1 + max(type_depth(c.type) for c in children) if children else 0


def json_depth(value: Any) -> int:
    """Levels of arrays and objects inside a parsed JSON value (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def _check_utf8(block: bytes) -> None:
    """Raise ArrowInvalid for invalid UTF-8, which pyarrow's JSON parser lets through (Arrow
    validates 3.6 MB in 1 ms, where ``bytes.decode`` takes 8)."""
    if not block.isascii():
        string_array(block, np.array([len(block)])).validate(full=True)


def _arrow_parse(block: bytes) -> pa.Table:
    piece = max(_MIN_PARSE_PIECE, -(-len(block) // (os.cpu_count() or 1)))
    options = pa_json.ReadOptions(use_threads=True, block_size=piece)
    table = pa_json.read_json(pa.BufferReader(block), read_options=options)
    if not any(_has_temporal(field.type) for field in table.schema):
        return table
    schema = pa.schema([field.with_type(_temporal_as_text(field.type)) for field in table.schema])
    parse = pa_json.ParseOptions(explicit_schema=schema)
    return pa_json.read_json(pa.BufferReader(block), read_options=options, parse_options=parse)


def _has_temporal(t: pa.DataType) -> bool:
    return pa.types.is_temporal(t) or any(_has_temporal(child.type) for child in _children(t))


def _temporal_as_text(t: pa.DataType) -> pa.DataType:
    if pa.types.is_temporal(t):
        return pa.string()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_temporal_as_text(f.type)) for f in _children(t)])
    if pa.types.is_list(t):
        return pa.list_(_temporal_as_text(t.value_type))
    return t


def _children(t: pa.DataType) -> list[pa.Field]:
    if pa.types.is_struct(t):
        return list(t)
    if pa.types.is_list(t):
        return [t.value_field]
    return []


def _parse_lines(block: bytes, path: str, first_line: int, on_bad: OnBad | None) -> pa.Table | None:
    """Slow path: parse each line alone, reporting bad ones; keep the good ones in order."""
    rows: list[dict[str, Any]] = []
    good: list[bytes] = []
    blank = 0
    for offset, raw in enumerate(block.split(b"\n")):
        record = raw.strip()
        if not record:
            blank += 1
            continue
        value, reason = parse_object(record)
        if reason:
            report(on_bad, path, first_line + offset, reason, raw)
        else:
            rows.append(value)
            good.append(record)
    if not rows:
        return None
    if len(rows) + blank < block.count(b"\n") + 1:  # bad lines were the trouble: try the fast way
        try:
            return _arrow_parse(b"\n".join(good))
        except _PARSE_ERRORS:
            pass
    return rows_to_table(rows)


def parse_object(record: bytes) -> tuple[Any, str]:
    """(object, "") for a JSON object, else (None, reason the record is not one)."""
    try:
        value = orjson.loads(record)
    except orjson.JSONDecodeError as e:
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError as bad:
            return None, f"invalid UTF-8 (byte 0x{record[bad.start]:02x} at offset {bad.start})"
        if e.msg == "unexpected end of data":
            return None, f"truncated JSON record (unexpected end of data at column {e.colno})"
        value = _with_non_finite(text)
        if value is None:
            return None, f"invalid JSON at column {e.colno}: {e.msg}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {_json_kind(value)}"
    if (depth := json_depth(value) - 1) > MAX_DEPTH:
        return (
            None,
            f"nested {depth} levels deep; prepflow keeps at most {MAX_DEPTH} (Parquet's limit)",
        )
    return value, ""


def _with_non_finite(text: str) -> Any:
    """The record parsed with ``NaN``/``Infinity``/``-Infinity`` allowed (as Python's json and
    pyarrow read them, so they stay non-finite floats instead of failing the line); None when it
    is not JSON even so."""
    if not any(token in text for token in ("NaN", "Infinity")):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"
