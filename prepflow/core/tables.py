"""Small Arrow table helpers every operator needs, written once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.errors import ConfigError


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` with column ``name`` replaced by ``values``, or appended when it is new."""
    index = table.schema.get_field_index(name)
    if index < 0:
        return table.append_column(name, values)
    return table.set_column(index, name, values)


def take_rows(table: pa.Table, rows: Sequence[int]) -> pa.Table:
    """The given rows of ``table``, in the given order (repeats allowed)."""
    return table.take(from_numpy(np.asarray(rows, dtype=np.int64)))


# ``pa.array`` and ``pa.scalar`` import pandas whenever it is installed (0.25 s and 30 MB the
# first time, on the critical path of runs that never need it), and so does ``Array.to_numpy``:
# the conversions between numpy, Python and Arrow that the engine and operators make all day
# are written against the buffers here.
_NUMPY_TYPES = {
    pa.from_numpy_dtype(t): np.dtype(t)
    for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float32, np.float64)
}  # fmt: skip


def from_numpy(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A 1-D bool or numeric numpy array as an Arrow array, null where ``valid`` is false."""
    values = np.ascontiguousarray(values)
    if values.dtype == np.bool_:
        kind, data = pa.bool_(), np.packbits(values, bitorder="little")
    else:
        kind, data = pa.from_numpy_dtype(values.dtype), values
    bitmap, nulls = None, 0
    if valid is not None:
        bitmap = pa.py_buffer(np.packbits(np.asarray(valid, dtype=bool), bitorder="little"))
        nulls = len(values) - int(np.count_nonzero(valid))
    return pa.Array.from_buffers(kind, len(values), [bitmap, pa.py_buffer(data)], nulls)


def to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A bool or numeric array as numpy: a view of its buffer for numbers, so never written to."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if values.null_count or not (pa.types.is_boolean(kind) or kind in _NUMPY_TYPES):
        return values.to_numpy(zero_copy_only=False)  # nulls or other types: pyarrow's (pandas)
    data = values.buffers()[1]
    if pa.types.is_boolean(kind):
        bits = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        flags = np.unpackbits(bits, count=values.offset + len(values), bitorder="little")
        return flags[values.offset :].view(np.bool_)
    dtype = _NUMPY_TYPES[kind]
    if not len(values):
        return np.zeros(0, dtype)
    return np.frombuffer(data, dtype, len(values), values.offset * dtype.itemsize)


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-D array without NaN, sorted: ``np.unique(values)`` without the
    ``numpy.ma`` import numpy 2.x's makes on its first call (8-15 ms holding the GIL, in a worker
    thread while the other waits)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def int64_range(start: int, stop: int) -> pa.Array:
    """``start .. stop-1`` as an int64 array."""
    return from_numpy(np.arange(start, stop, dtype=np.int64))


def string_array(
    values: bytes | np.ndarray, sizes: np.ndarray, valid: np.ndarray | None = None
) -> pa.Array:
    """Strings of ``sizes`` bytes each, back to back in ``values`` (bytes, or uint8 numpy
    array, used without a copy), null where ``valid`` is false (large_string past 2 GiB)."""
    big = len(values) >= 2**31
    offsets = np.zeros(len(sizes) + 1, np.int64 if big else np.int32)
    np.cumsum(sizes, out=offsets[1:])
    bitmap = None
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    kind = pa.large_string() if big else pa.string()
    buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(values)]
    return pa.Array.from_buffers(kind, len(sizes), buffers)


def strings(values: Sequence[str | None]) -> pa.Array:
    """Python strings (``None`` for null) as an Arrow string array."""
    encoded = [b"" if v is None else v.encode() for v in values]
    sizes = np.fromiter(map(len, encoded), np.int64, len(encoded))
    valid = np.fromiter((v is not None for v in values), bool, len(encoded))
    return string_array(b"".join(encoded), sizes, valid)


def scalar(value: str | bool | float | None, kind: pa.DataType) -> pa.Scalar:
    """``value`` as an Arrow scalar of type ``kind``."""
    if value is None:
        return pa.nulls(1, kind)[0]
    one = strings([value]) if isinstance(value, str) else from_numpy(np.asarray([value]))
    return (one if one.type == kind else one.cast(kind))[0]


def fill_null(values: pa.Array | pa.ChunkedArray, value: str | bool | float) -> pa.Array:
    """``values`` with each null replaced by ``value``."""
    return pc.fill_null(values, scalar(value, values.type))


def text_column(batch: pa.Table, name: str, op: str) -> pa.Array:
    """The string column ``name`` of ``batch`` as one array, or a clear error naming ``op``."""
    if name not in batch.column_names:
        raise ConfigError(f"{op}: no column {name!r} in the data")
    column = batch.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise ConfigError(f"{op}: column {name!r} must hold strings, not {column.type}")
    return column.combine_chunks()
