"""File formats and compression codecs, inferred from file names.

One table answers "what is this file?" for readers and writers alike, so ``data.jsonl.gz`` means
the same thing on both sides. Compression is decided here (not by fsspec's own inference) because
fsspec silently reads ``.zst`` files as raw bytes when ``zstandard`` is missing; we name the
package instead. Files are then opened with ``fs.open(path, mode, compression=codec)``.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from prepflow.core.errors import ConfigError, PrepflowError

FORMATS = ("jsonl", "json", "parquet", "csv", "hf", "txt", "documents")
"""Every format name accepted by ``open_input(format=...)``; all but :data:`READ_ONLY` by
``write_output(format=...)`` too."""

_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "txt",
}
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
_CODEC_PACKAGES = {"zstd": "zstandard"}
_UNCOMPRESSIBLE = {"parquet", "hf"}  # formats with their own internal compression
READ_ONLY = {"txt", "documents"}  # input formats with no writer (txt: a row per line)

HF_MARKERS = ("state.json", "dataset_info.json")
"""Files that mark a directory written by ``datasets.Dataset.save_to_disk``."""
HF_DICT_MARKER = "dataset_dict.json"


@dataclass(frozen=True)
class FileKind:
    """What a file name says about its content."""

    format: str | None  # None: the name has no known data extension
    compression: str | None = None  # an fsspec codec name
    delimiter: str = ","  # CSV field separator (tab for .tsv)


def file_kind(path: str) -> FileKind:
    """Format, compression and CSV delimiter of ``path`` from its (possibly double) extension."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    stem, dot, ext = name.rpartition(".")
    compression = _COMPRESSIONS.get(dot + ext) if stem else None
    if compression:
        stem, dot, ext = stem.rpartition(".")
    fmt = _EXTENSIONS.get(dot + ext) if stem else None
    return FileKind(fmt, compression, "\t" if ext == "tsv" else ",")


def check_format(
    fmt: str,
    compression: str | None = None,
    error: type[PrepflowError] = ConfigError,
    *,
    reading: bool = False,
) -> None:
    """Raise ``error`` for an unknown format, a compression the format cannot take, or a codec
    whose package is missing (before any work, rather than at the first read or write)."""
    if fmt not in FORMATS:
        raise error(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt in READ_ONLY and not reading:
        raise error(f"format {fmt!r} is an input format only; write jsonl, parquet, csv or hf")
    if compression and fmt in _UNCOMPRESSIBLE:
        raise error(f"format {fmt!r} cannot be wrapped in {compression} compression")
    if compression and compression not in _codecs():
        package = _CODEC_PACKAGES.get(compression, compression)
        raise error(f"{compression} compression needs `pip install {package}`")


def _codecs() -> Container[str]:
    """The codecs fsspec can open here (imports fsspec: only for a compressed file)."""
    from fsspec.compression import compr

    return compr
