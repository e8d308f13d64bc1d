"""Schema drift, resolved by one rule for readers (inside a batch) and writers (across shards).

Types are promoted the way Arrow's permissive unification does it: a null or missing column takes
the other side's type, int widens to float, structs merge their fields, lists promote their items.
A column whose types cannot be promoted (number in one place, string or object in another) becomes
a string column: strings stay as they are and every other value becomes its JSON text (``5`` ->
``"5"``, ``{"a": 1}`` -> ``'{"a":1}'``). No value is dropped; the type is what gives way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pyarrow as pa

_CONFLICT = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def unify_schemas(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """One schema holding every column of ``schemas`` (in first-seen order), promoted as above."""
    schemas = [s.remove_metadata() for s in schemas]
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except _CONFLICT:
        pass
    by_name: dict[str, list[pa.Field]] = {}
    for schema in schemas:
        for field in schema:
            by_name.setdefault(field.name, []).append(field)
    return pa.schema([_unify_fields(name, fields) for name, fields in by_name.items()])


def _unify_fields(name: str, fields: list[pa.Field]) -> pa.Field:
    try:
        return pa.unify_schemas([pa.schema([f]) for f in fields], promote_options="permissive")[0]
    except _CONFLICT:
        return pa.field(name, pa.string())


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly the columns of ``schema``: missing ones null, others converted."""
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        index = table.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            columns.append(_conform_column(table.column(index), field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _conform_column(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    source = column.type
    if source == target:
        return column
    textual = pa.types.is_string(target) or pa.types.is_large_string(target)
    if textual and not (pa.types.is_null(source) or _is_text(source)):
        return json_text(column).cast(target)
    try:
        return column.cast(target)
    except _CONFLICT:  # int64 beyond 2**53 widened to float: the promotion itself is lossy
        return column.cast(target, safe=False)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def concat_tables(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate in order; tables with differing schemas are unified first."""
    if len(tables) == 1:
        return tables[0]
    if not any(t.num_columns for t in tables):  # rows of empty objects: Arrow would drop them
        return _no_columns(sum(t.num_rows for t in tables))
    first = tables[0].schema
    if all(t.schema.equals(first) for t in tables[1:]):
        return pa.concat_tables(tables)
    schema = unify_schemas(t.schema for t in tables)
    return pa.concat_tables([conform(t, schema) for t in tables])


def json_text(values: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    """Strings unchanged, other values as their JSON text, nulls kept null."""
    t = values.type
    if _is_text(t) or pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return values.cast(pa.string())  # Arrow's text for these equals their JSON text
    return pa.array([_text(v) for v in values.to_pylist()], pa.string())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def rows_to_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Table from parsed JSON objects; every key of every row becomes a column (first-seen order).

    ``pa.Table.from_pylist`` takes the column names from the first row only; this keeps keys that
    appear late, and turns a column whose values Arrow cannot type together into JSON text.
    """
    keys = dict.fromkeys(key for row in rows for key in row)
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        try:
            columns[key] = pa.array(values)
        except (*_CONFLICT, OverflowError):
            columns[key] = pa.array([_text(v) for v in values], pa.string())
    return pa.table(columns) if columns else _no_columns(len(rows))


def _no_columns(rows: int) -> pa.Table:
    """A table of ``rows`` rows and no columns (``{}`` records are still records)."""
    return pa.table({"": pa.nulls(rows)}).drop_columns([""])
