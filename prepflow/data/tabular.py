"""CSV, Parquet and Arrow-stream (HF ``datasets``) readers, all streaming through pyarrow.

CSV typing: pyarrow infers int, float and bool columns from the first block; every other inferred
type (dates, timestamps, all-empty columns) is read as the text it is. When a later block holds a
value that does not fit the inferred type (``oops`` in an int column), the file is read again with
that column as text, skipping the rows already streamed: earlier tables keep their numbers, later
ones carry text, and ``prepflow.data.schema`` unifies them (``5`` -> ``"5"``). A row with the wrong
number of fields is a bad record (reported once the file is read, with its physical line);
invalid UTF-8 always stops the run (pyarrow cannot skip it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

import pyarrow as pa

from prepflow.core.errors import InputError
from prepflow.data.records import OnBad, report

if TYPE_CHECKING:
    import pyarrow.csv as pa_csv

Opener = Callable[[], contextlib.AbstractContextManager[IO[bytes]]]

_INFERRED_KEPT = (pa.int64(), pa.float64(), pa.bool_(), pa.string())
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")
_PARQUET_BATCH_ROWS = 65536


class _Retype(Exception):
    """Read the file again with ``columns`` as text."""

    def __init__(self, columns: list[str]):
        super().__init__(columns)
        self.columns = columns


def read_csv(
    open_: Opener, path: str, on_bad: OnBad | None, delimiter: str, block_bytes: int
) -> Iterator[pa.Table]:
    """Stream a CSV/TSV file with a header row as tables."""
    text_columns: list[str] = []
    emitted = 0
    while True:
        skip = emitted
        try:
            for table in _csv_pass(open_, path, on_bad, delimiter, block_bytes, text_columns):
                seen = min(skip, table.num_rows)  # streamed before the restart
                table, skip = table.slice(seen), skip - seen
                if table.num_rows:
                    emitted += table.num_rows
                    yield table
            return
        except _Retype as e:
            text_columns += e.columns


def _csv_pass(
    open_: Opener,
    path: str,
    on_bad: OnBad | None,
    delimiter: str,
    block_bytes: int,
    text_columns: list[str],
) -> Iterator[pa.Table]:
    import pyarrow.csv as pa_csv  # 0.013 s of import: only for CSV inputs

    invalid: list[pa_csv.InvalidRow] = []  # rows pyarrow skipped, in order

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        invalid.append(row)
        return "skip" if on_bad else "error"

    parse = pa_csv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid)
    convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(text_columns, pa.string()))
    with open_() as f:
        try:
            reader = pa_csv.open_csv(f, pa_csv.ReadOptions(block_size=block_bytes), parse, convert)
            untyped = [c.name for c in reader.schema if c.type not in _INFERRED_KEPT]
            if untyped:
                raise _Retype(untyped)
            for batch in reader:
                yield pa.Table.from_batches([batch])
        except pa.ArrowInvalid as e:
            if "Empty CSV file" in str(e):  # no header row, or a header without its newline
                return
            if invalid:  # raise mode: the handler stopped the reader at the first bad row
                _report_invalid(open_, path, None, delimiter, invalid)
            _raise_for_conversion(e, open_, path, delimiter, text_columns)
    if invalid:
        _report_invalid(open_, path, on_bad, delimiter, invalid)


def _raise_for_conversion(
    error: pa.ArrowInvalid, open_: Opener, path: str, delimiter: str, text_columns: list[str]
) -> None:
    """Retype a column that outgrew its inferred type; anything else is fatal, with a line."""
    match = _CONVERSION.search(str(error))
    if match:
        column = _header(open_, delimiter)[int(match[1])]
        if column not in text_columns:
            raise _Retype([column]) from error
        if match[2] == "string":
            line = _first_invalid_utf8_line(open_)
            raise InputError(f"invalid UTF-8 in column {column!r}", path=path, line=line)
    raise InputError(f"unreadable CSV: {error}", path=path) from error


def _report_invalid(
    open_: Opener,
    path: str,
    on_bad: OnBad | None,
    delimiter: str,
    rows: list[pa_csv.InvalidRow],
) -> None:
    """Report pyarrow's skipped rows with their physical line numbers.

    pyarrow's streaming reader does not number the rows it rejects; Python's csv module, reading
    the same dialect, finds the rows with the wrong field count and where each starts.
    """
    expected = rows[0].expected_columns
    for row, line in zip(rows, _wrong_width_lines(open_, delimiter, expected), strict=False):
        reason = f"expected {expected} fields, found {row.actual_columns}"
        report(on_bad, path, line, reason, row.text.encode())


def _wrong_width_lines(open_: Opener, delimiter: str, expected: int) -> Iterator[int]:
    """First line of each non-blank CSV row that does not have ``expected`` fields."""
    with open_() as f:
        rows = csv.reader(_text(f), delimiter=delimiter)
        line = 1
        for fields in rows:
            start, line = line, rows.line_num + 1
            if fields and len(fields) != expected:
                yield start


def _header(open_: Opener, delimiter: str) -> list[str]:
    with open_() as f:
        return next(csv.reader(_text(f), delimiter=delimiter), [])


def _text(f: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(f, encoding="utf-8-sig", errors="replace", newline="")


def _first_invalid_utf8_line(open_: Opener) -> int | None:
    with open_() as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def read_parquet(f: IO[bytes], path: str) -> Iterator[pa.Table]:
    """Stream a Parquet file by batches; a file that cannot be read is an InputError on ``path``."""
    import pyarrow.parquet as pq  # loaded for Parquet inputs only: 5 ms of every other run

    try:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"unreadable Parquet file: {e}", path=path) from e


def parquet_rows(f: IO[bytes]) -> int:
    """The row count in a Parquet file's footer."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(f).metadata.num_rows


def parquet_schema(f: IO[bytes], path: str) -> pa.Schema:
    """The schema in a Parquet file's footer, without reading data."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(f)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"unreadable Parquet file: {e}", path=path) from e


def read_arrow_stream(f: IO[bytes], path: str) -> Iterator[pa.Table]:
    """Stream an Arrow IPC stream file (what ``datasets`` writes), minus ``datasets``' metadata."""
    try:
        for batch in pa.ipc.open_stream(f):
            yield pa.Table.from_batches([batch]).replace_schema_metadata(None)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"unreadable Arrow stream file: {e}", path=path) from e
