"""Open any supported input as a Source that streams exact-size Arrow batches, in order.

A Source is a file, a directory of shards, a glob, or an fsspec URL, resolved once to a sorted
list of files of one format. Batch ``k`` always holds rows ``[k*n, (k+1)*n)`` of the whole input,
whatever the file boundaries, so the engine can name, skip and resume batches by index. Batches
may differ in schema from one another (drift is kept, see ``prepflow.data.schema``); inside one
batch the tables read from different blocks or files are unified.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import lzma
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

import orjson
import pyarrow as pa

from prepflow.core.errors import InputError, PrepflowError
from prepflow.data import files
from prepflow.data.documents import document_root, document_table, named_format
from prepflow.data.formats import (
    HF_DICT_MARKER,
    HF_MARKERS,
    check_format,
    file_kind,
)
from prepflow.data.json_array import read_json
from prepflow.data.jsonl import BLOCK_BYTES, read_jsonl
from prepflow.data.records import BadRecord, OnBad
from prepflow.data.schema import concat_tables
from prepflow.data.tabular import (
    parquet_rows,
    parquet_schema,
    read_arrow_stream,
    read_csv,
    read_parquet,
)
from prepflow.data.text_lines import read_lines

if TYPE_CHECKING:
    import fsspec

__all__ = ["BadRecord", "Source", "open_input", "rebatch"]

_SAMPLE_BYTES = 1 << 20  # what schema() reads of a text file


class Source:
    """The files of one input, in a fixed order, all of one format. ``fs`` is None for local
    files (then fsspec is imported only to open a compressed one: see ``data.files``)."""

    def __init__(self, fs: fsspec.AbstractFileSystem | None, paths: list[str], format: str):
        self._fs, self.paths, self.format = fs, paths, format
        self.local = fs is None or files.is_local_filesystem(fs)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs = files.local_filesystem()
        return self._fs

    def __repr__(self) -> str:
        return f"Source(format={self.format!r}, files={len(self.paths)}, first={self.paths[0]!r})"

    def schema(self) -> pa.Schema:
        """Columns of the first rows (Parquet: the first file's footer); bad records ignored."""
        if self.format == "parquet":
            with _reading(self.paths[0]), self._open(self.paths[0]) as f:
                return parquet_schema(f, self.paths[0])
        for path in self.paths:
            with contextlib.closing(self._tables(path, lambda bad: None, _SAMPLE_BYTES)) as tables:
                for table in tables:
                    return table.schema
        return pa.schema([])

    def estimate_rows(self) -> int:
        """Rows in the input without reading it: Parquet footers, else bytes / sampled row size.

        Compressed text inputs are estimated from their compressed size (an underestimate).
        """
        if self.format == "parquet":
            total = 0
            for path in self.paths:
                with _reading(path), self._open(path) as f:
                    total += parquet_rows(f)
            return total
        if self.format == "documents":
            return len(self.paths)
        size = sum(self._size(p) for p in self.paths)
        with _reading(self.paths[0]), self._open(self.paths[0]) as f:
            sample = f.read(_SAMPLE_BYTES)
        lines = sample.count(b"\n") or 1
        return max(1, round(size * lines / max(1, len(sample))))

    def iter_batches(self, batch_rows: int, on_bad: OnBad | None = None) -> Iterator[pa.Table]:
        """Stream every row in order as tables of exactly ``batch_rows`` rows (the last: fewer).

        Malformed records raise InputError (file and line) when ``on_bad`` is None; otherwise
        each is handed to ``on_bad`` and skipped, and reading goes on.
        """
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        tables = (t for path in self.paths for t in self._tables(path, on_bad, BLOCK_BYTES))
        yield from rebatch(tables, batch_rows)

    def _tables(self, path: str, on_bad: OnBad | None, block_bytes: int) -> Iterator[pa.Table]:
        """The tables of one file; a file that cannot be read (truncated or corrupt compressed
        data or Parquet, permission denied) is one :class:`InputError` naming it."""
        with _reading(path):
            yield from self._file_tables(path, on_bad, block_bytes)

    def _file_tables(self, path: str, on_bad: OnBad | None, block_bytes: int) -> Iterator[pa.Table]:
        if self.format == "csv":
            opener = functools.partial(self._open, path)  # read_csv may read the file twice
            yield from read_csv(opener, path, on_bad, file_kind(path).delimiter, block_bytes)
            return
        with self._open(path) as f:
            if self.format == "jsonl":
                yield from read_jsonl(f, path, on_bad, block_bytes)
            elif self.format == "json":
                yield from read_json(f, path, on_bad, block_bytes)
            elif self.format == "parquet":
                yield from read_parquet(f, path)
            elif self.format == "txt":
                yield from read_lines(f, path, on_bad, block_bytes)
            elif self.format == "documents":
                yield document_table(path, f.read(), self._document_root)
            else:
                yield from read_arrow_stream(f, path)

    @functools.cached_property
    def _document_root(self) -> str:
        return document_root(self.paths)

    def _size(self, path: str) -> int:
        return os.path.getsize(path) if self.local else self.fs.info(path).get("size") or 0

    def _open(self, path: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        compression = file_kind(path).compression
        if self.local and compression is None:
            return open(path, "rb")
        return self.fs.open(path, "rb", compression=compression)


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """A file that cannot be read (truncated or corrupt compressed data or Parquet, permission
    denied) is one :class:`InputError` naming it, not a traceback."""
    try:
        yield
    except PrepflowError:
        raise
    except (EOFError, OSError, ValueError, pa.ArrowException) as e:
        raise InputError(f"cannot read the file: {_describe(e)}", path=path) from None


def _describe(error: BaseException) -> str:
    """One line for a read error: what is wrong, without the library's stack of context."""
    if isinstance(error, EOFError):
        return "it ends early (truncated compressed data)"
    if isinstance(error, PermissionError):
        return "permission denied"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, (zlib.error, gzip.BadGzipFile, lzma.LZMAError)):
        return f"corrupt compressed data ({text})"
    return text


class HeadSource(Source):
    """The first ``limit`` rows of another source (``prepflow run --limit N``)."""

    def __init__(self, source: Source, limit: int) -> None:
        super().__init__(source._fs, source.paths, source.format)
        self.limit = limit

    def estimate_rows(self) -> int:
        return min(self.limit, super().estimate_rows())

    def iter_batches(self, batch_rows: int, on_bad: OnBad | None = None) -> Iterator[pa.Table]:
        left = self.limit
        for batch in super().iter_batches(batch_rows, on_bad):
            if left <= 0:
                return
            yield batch.slice(0, left)
            left -= batch.num_rows


def rebatch(tables: Iterable[pa.Table], batch_rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables of any sizes into tables of exactly ``batch_rows`` rows."""
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        offset = 0
        while offset < table.num_rows:
            take = min(batch_rows - count, table.num_rows - offset)
            # always with a length: without one, pyarrow ignores the offset of a 0-column table
            pending.append(table.slice(offset, take))
            offset += take
            count += take
            if count == batch_rows:
                yield concat_tables(pending)
                pending, count = [], 0
    if pending:
        yield concat_tables(pending)


def open_input(path: str | os.PathLike[str], *, format: str | None = None) -> Source:
    """Resolve a file, directory of shards, glob or fsspec URL to a Source.

    The format comes from the file extensions (``.jsonl``/``.ndjson``, ``.json``, ``.parquet``,
    ``.csv``/``.tsv``, ``.txt`` (a row per non-blank line), each optionally
    ``.gz``/``.bz2``/``.xz``/``.zst``; documents: ``.pdf``, ``.html``, ``.docx``, ``.epub``,
    ``.md``) or from a directory written by ``datasets``' ``save_to_disk``; ``format`` overrides
    the extensions (``documents`` reads any file as one document row, see
    ``prepflow.data.documents``). In a
    directory, files and folders whose names start with ``.`` or ``_`` are ignored.
    """
    url = os.fspath(path)
    if format is not None:
        check_format(format, error=InputError, reading=True)
    if (
        files.is_plain(url)
        and not files.is_glob(url)
        and os.path.isfile(plain := files.plain_path(url))
    ):
        return _source(None, [plain], url, format)  # the common case, without fsspec
    fs, root = files.filesystem(url)
    if files.is_glob(root):
        matched = fs.glob(root, detail=True)
        found = sorted(p for p, info in matched.items() if info["type"] == "file")
        if not found:
            raise InputError("the pattern matches no files", path=url)
    elif fs.isdir(root):
        if format == "hf" or any(fs.isfile(f"{root}/{m}") for m in HF_MARKERS):
            return Source(fs, _shown(fs, _hf_files(fs, root, url)), "hf")
        if fs.isfile(f"{root}/{HF_DICT_MARKER}"):
            splits = orjson.loads(fs.cat_file(f"{root}/{HF_DICT_MARKER}")).get("splits", [])
            raise InputError(
                f"this is a datasets DatasetDict; pass one split's directory ({', '.join(splits)})",
                path=url,
            )
        found = sorted(p for p in fs.find(root) if not _hidden(p[len(root) :]))
        if not found:
            raise InputError("the directory holds no data files", path=url)
    elif fs.isfile(root):
        found = [root]
    else:
        raise InputError("no such file or directory", path=url)
    return _source(fs, _shown(fs, found), url, format)


def _source(
    fs: fsspec.AbstractFileSystem | None, paths: list[str], url: str, format: str | None
) -> Source:
    """The Source of ``paths`` (as shown to users), their format told and checked."""
    fmt = format or _common_format(paths, url)
    for p in paths:
        check_format(fmt, file_kind(p).compression, error=InputError, reading=True)
    return Source(fs, paths, fmt)


def _hidden(relative: str) -> bool:
    return any(part[:1] in (".", "_") for part in relative.split("/") if part)


def _shown(fs: fsspec.AbstractFileSystem, paths: list[str]) -> list[str]:
    """Paths as users write them: plain for local files, with the protocol otherwise."""
    if files.is_local_filesystem(fs):
        return paths
    return [fs.unstrip_protocol(p) for p in paths]


def _common_format(paths: list[str], url: str) -> str:
    data = [p for p in paths if file_kind(p).format not in (None, "txt")]
    if any(map(named_format, paths)) and not data:
        return "documents"  # a folder of documents: stray files become failure records
    formats: dict[str, str] = {}
    for p in paths:
        fmt = file_kind(p).format
        if fmt is None:
            raise InputError(
                f"cannot tell the data format of {p} from its name; pass format=",
                path=url,
            )
        formats.setdefault(fmt, p)
    if len(formats) > 1:
        examples = ", ".join(f"{fmt} ({p})" for fmt, p in formats.items())
        raise InputError(f"the input mixes formats: {examples}", path=url)
    return next(iter(formats))


def _hf_files(fs: fsspec.AbstractFileSystem, root: str, url: str) -> list[str]:
    """The Arrow files of a ``save_to_disk`` directory, in the order its state.json lists them."""
    state = f"{root}/state.json"
    if fs.isfile(state):
        names = [entry["filename"] for entry in orjson.loads(fs.cat_file(state))["_data_files"]]
        return [f"{root}/{name}" for name in names]
    arrows = sorted(p for p in fs.glob(f"{root}/*.arrow"))
    if not arrows:
        raise InputError("datasets directory without state.json or .arrow files", path=url)
    return arrows
