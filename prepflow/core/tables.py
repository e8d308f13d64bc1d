"""Small Arrow table helpers every operator needs, written once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from prepflow.core.errors import ConfigError


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` with column ``name`` replaced by ``values``, or appended when it is new."""
    index = table.schema.get_field_index(name)
    if index < 0:
        return table.append_column(name, values)
    return table.set_column(index, name, values)


def take_rows(table: pa.Table, rows: Sequence[int]) -> pa.Table:
    """The given rows of ``table``, in the given order (repeats allowed)."""
    return table.take(pa.array(rows, pa.int64()))


def int64_range(start: int, stop: int) -> pa.Array:
    """``start .. stop-1`` as an int64 array, built from a buffer: ``pa.array`` imports pandas
    when it is installed (0.3 s the first time, on every run's critical path)."""
    values = np.arange(start, stop, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def text_column(batch: pa.Table, name: str, op: str) -> pa.Array:
    """The string column ``name`` of ``batch`` as one array, or a clear error naming ``op``."""
    if name not in batch.column_names:
        raise ConfigError(f"{op}: no column {name!r} in the data")
    column = batch.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise ConfigError(f"{op}: column {name!r} must hold strings, not {column.type}")
    return column.combine_chunks()
