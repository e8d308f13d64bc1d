"""Write the final dataset from the run's shard files, and single files, atomically.

Output format: ``format=`` when given, else the extension of ``path`` (``.jsonl``/``.ndjson``,
``.json``, ``.parquet``, ``.csv``/``.tsv``; text formats may add ``.gz``/``.bz2``/``.xz``/``.zst``),
and a ``path`` ending in ``/`` is a ``datasets`` (``save_to_disk``) directory. Everything is
written to a temporary name beside the target and renamed over it only when complete, so a crash
never leaves a half-written output under the real name.

Per format: JSON Lines and JSON write one object per row (NaN becomes null, as JSON has no NaN);
CSV writes nested (struct/list) values as their JSON text; Parquet is zstd-compressed; ``hf``
needs the optional ``datasets`` package.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson
import pyarrow as pa

from prepflow.core.errors import ConfigError
from prepflow.data import files, shardfile
from prepflow.data.formats import FileKind, check_format, file_kind
from prepflow.data.schema import conform, json_text, unify_schemas

if TYPE_CHECKING:
    import fsspec

_READ_ROWS = 65536  # rows per batch read back from a shard
#: Temporary files are ``.<name>.<12 hex>.tmp`` beside their target: hidden (never read as input
#: data) and recognisable, so that what a kill left behind is removed on the next run.
TEMP_SUFFIX = ".tmp"
#: What ``datasets.Dataset.save_to_disk`` writes into its directory.
_DATASETS_FILE = re.compile(r"state\.json|dataset_info\.json|data-\d+-of-\d+\.arrow")
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp(\.old)?")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file name prepflow gives its writes."""
    return _TEMP_NAME.fullmatch(name) is not None


def remove_stale_temps(target: str | os.PathLike[str]) -> None:
    """Delete temporary files an interrupted write of ``target`` left beside it (local only)."""
    path = Path(os.fspath(target).rstrip("/"))
    if not files.is_plain(os.fspath(target)) or not path.parent.is_dir():
        return
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}*"):
        if is_temp_name(stale.name):
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)


def write_shard_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` as an engine shard file (:mod:`prepflow.data.shardfile`) at the local
    ``path``, all or nothing."""
    with _replacing_local(path) as tmp:
        shardfile.write(table, tmp)


def output_format(url: str, format: str | None = None) -> str:
    """The format an output is written in: ``format``, else ``hf`` for a path ending in ``/``,
    else the extension's."""
    fmt = format or ("hf" if url.endswith("/") else file_kind(url).format)
    if fmt is None:
        raise ConfigError(
            f"cannot tell the output format of {url!r}: end it with .jsonl, .json, .parquet, "
            ".csv or .tsv (text formats may add .gz), or with / for a datasets directory, "
            "or pass format="
        )
    check_format(fmt, file_kind(url).compression)
    return fmt


def check_output(url: str, format: str | None = None) -> str:
    """The output's format, after checking that writing it destroys nothing: an existing
    directory is replaced only by a datasets directory, and only if it holds nothing but what
    ``save_to_disk`` writes (a directory the user named is never deleted)."""
    fmt = output_format(url, format)
    if files.is_plain(url):
        target = files.plain_path(url)
        if not os.path.isdir(target):
            return fmt
        names = os.listdir(target)
    else:
        fs, target = files.filesystem(url)
        target = target.rstrip("/")
        if not fs.isdir(target):
            return fmt
        names = [p.rsplit("/", 1)[-1] for p in fs.ls(target, detail=False)]
    if fmt != "hf":
        raise ConfigError(f"output {url!r} is an existing directory: name a file instead")
    foreign = [name for name in names if not _DATASETS_FILE.fullmatch(name)]
    if foreign:
        raise ConfigError(
            f"output {url!r} is an existing directory with files a datasets directory does "
            f"not have ({', '.join(sorted(foreign)[:5])}): name a new or empty directory"
        )
    return fmt


def write_text_atomic(path: Path, data: str | bytes) -> None:
    """Write a small local file all or nothing (temporary name, then rename)."""
    with _replacing_local(Path(path)) as tmp:
        Path(tmp).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def write_output(
    shards: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    drop_columns: Sequence[str] = ("_id",),
) -> int:
    """Concatenate the shard files ``shards`` in order into the dataset at ``path``; return rows
    written.

    Shards may disagree on schema; they are unified from their footers before the first
    row is written (``prepflow.data.schema`` rules), so no column or value is lost. Memory holds
    one batch at a time.
    """
    url = os.fspath(path)
    kind = file_kind(url)
    fmt = check_output(url, format)
    sources = [os.fspath(s) for s in shards]
    schema = unify_schemas(shardfile.schema(s) for s in sources)
    schema = pa.schema([f for f in schema if f.name not in set(drop_columns)])
    batches = _read_shards(sources, schema)
    if fmt in ("jsonl", "json", "csv") and kind.compression is None and files.is_plain(url):
        # the common case, without fsspec (see data.files)
        with _replacing_local(Path(files.plain_path(url))) as tmp, open(tmp, "wb") as sink:
            return _write_text(sink, url, fmt, kind, schema, batches)
    with _replacing(url) as (fs, tmp):
        if fmt == "hf":
            return _write_hf(fs, tmp, schema, batches)
        if fmt == "parquet":
            return _write_parquet(fs, tmp, schema, batches)
        with fs.open(tmp, "wb", compression=kind.compression) as sink:
            return _write_text(sink, url, fmt, kind, schema, batches)


def _write_text(
    sink: IO[bytes],
    url: str,
    fmt: str,
    kind: FileKind,
    schema: pa.Schema,
    batches: Iterator[pa.Table],
) -> int:
    """JSON Lines, JSON or CSV (``fmt``) into ``sink``."""
    try:
        if fmt == "csv":
            return _write_csv(sink, schema, batches, kind.delimiter)
        return _write_json(sink, batches, array=fmt == "json")
    except orjson.JSONEncodeError as e:
        raise ConfigError(f"{url}: cannot write as JSON ({e}); write Parquet") from e


def _read_shards(sources: Sequence[str], schema: pa.Schema) -> Iterator[pa.Table]:
    for source in sources:
        for batch in shardfile.read(source, schema.names).to_batches(max_chunksize=_READ_ROWS):
            yield conform(pa.Table.from_batches([batch]), schema)


def _write_parquet(
    fs: fsspec.AbstractFileSystem, tmp: str, schema: pa.Schema, batches: Iterator[pa.Table]
) -> int:
    import pyarrow.parquet as pq  # loaded for a Parquet output only: 5 ms of every other run

    rows = 0
    with pq.ParquetWriter(tmp, schema, filesystem=fs, compression="zstd") as writer:
        for table in batches:
            writer.write_table(table)
            rows += table.num_rows
    return rows


def _write_json(sink: IO[bytes], batches: Iterator[pa.Table], *, array: bool) -> int:
    """JSON Lines, or (``array``) a JSON array with one element per line.

    Rows are appended to one buffer per batch: keeping many small ``bytes`` from orjson alive
    (a list to join) costs ~20x more in allocations than the serialization itself.
    """
    rows = 0
    option = 0 if array else orjson.OPT_APPEND_NEWLINE
    out = bytearray(b"[\n" if array else b"")
    for table in batches:
        for row in table.to_pylist():
            if array and rows:
                out += b",\n"
            out += orjson.dumps(row, option=option)
            rows += 1
        sink.write(out)
        out.clear()
    sink.write(out)  # left when no batch came: the opening "[" of an empty array
    if array:
        sink.write(b"\n]\n" if rows else b"]\n")
    return rows


def _write_csv(
    sink: IO[bytes], schema: pa.Schema, batches: Iterator[pa.Table], delimiter: str
) -> int:
    import pyarrow.csv as pa_csv  # only for CSV outputs

    nested = {f.name for f in schema if pa.types.is_nested(f.type)}
    text_schema = pa.schema([f.with_type(pa.string()) if f.name in nested else f for f in schema])
    rows = 0
    options = pa_csv.WriteOptions(delimiter=delimiter)
    with pa_csv.CSVWriter(sink, text_schema, write_options=options) as writer:
        for table in batches:
            for name in nested:
                index = table.schema.get_field_index(name)
                table = table.set_column(index, name, json_text(table.column(index)))
            writer.write_table(table)
            rows += table.num_rows
    return rows


def _write_hf(
    fs: fsspec.AbstractFileSystem, tmp: str, schema: pa.Schema, batches: Iterator[pa.Table]
) -> int:
    """A ``save_to_disk`` directory, built by ``datasets`` from a memory-mapped Arrow file."""
    try:
        import datasets
    except ImportError as e:
        raise ConfigError(
            "writing a datasets directory needs the `datasets` package: pip install prepflow[hf]"
        ) from e
    local = files.is_local_filesystem(fs)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(tmp) if local else None) as scratch:
        arrow = os.path.join(scratch, "data.arrow")
        rows = 0
        with pa.OSFile(arrow, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for table in batches:
                writer.write_table(table)
                rows += table.num_rows
        try:
            dataset = datasets.Dataset.from_file(arrow)
        except ValueError as e:  # an Arrow type with no datasets feature, e.g. a map
            raise ConfigError(
                f"the datasets format cannot hold this data ({e}); write Parquet"
            ) from e
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bar()  # the engine shows its own progress
        try:
            dataset.save_to_disk(tmp if local else fs.unstrip_protocol(tmp))
        finally:
            if bars:
                datasets.enable_progress_bar()
        del dataset
    return rows


@contextlib.contextmanager
def _replacing(url: str) -> Iterator[tuple[fsspec.AbstractFileSystem, str]]:
    """Yield a temporary path beside ``url``; when the body succeeds it replaces ``url``."""
    fs, target = files.filesystem(url)
    parent, _, name = target.rpartition("/")
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"
    try:
        yield fs, tmp
        _move_over(fs, tmp, target)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)


@contextlib.contextmanager
def _replacing_local(path: Path) -> Iterator[str]:
    """:func:`_replacing` for a local file, with os calls only (no fsspec round trips)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}{TEMP_SUFFIX}")
    try:
        yield str(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _move_over(fs: fsspec.AbstractFileSystem, tmp: str, target: str) -> None:
    """Rename ``tmp`` to ``target``: atomic for a local file; a directory swaps via a backup."""
    replace: Callable[[str, str], None] = (
        os.replace if files.is_local_filesystem(fs) else _remote_replace(fs)
    )
    if not fs.isdir(target):
        replace(tmp, target)
        return
    backup = f"{tmp}.old"
    replace(target, backup)
    replace(tmp, target)
    fs.rm(backup, recursive=True)


def _remote_replace(fs: fsspec.AbstractFileSystem) -> Callable[[str, str], None]:
    def replace(source: str, destination: str) -> None:
        if fs.exists(destination):
            fs.rm(destination, recursive=True)
        fs.mv(source, destination, recursive=True)

    return replace
