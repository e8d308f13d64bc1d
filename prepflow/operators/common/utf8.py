"""Vectorized passes over the UTF-8 bytes of a string column: what the numpy word cutter
(``operators.text._words``) and tokenizer (``operators.common.ngrams``) share.

Characters are classified by asking RE2 itself about a string of every code point
(:func:`classify`), so a numpy pass and a regex over the same classes agree on every character.
The tables are kept in the cache between processes (:func:`stored`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.paths import rebuildable
from prepflow.core.tables import distinct, fill_null, string_array, to_numpy

#: Texts are cut in groups of about this many bytes, which bounds the per-character arrays.
CHUNK_BYTES = 1 << 18


def plain(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``texts`` as one string array without nulls (a null is the empty text)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    return fill_null(texts, "") if texts.null_count else texts


def string_offsets(texts: pa.Array) -> np.ndarray:
    """Where each string of ``texts`` starts in its data buffer, and where the last ends."""
    wide = pa.types.is_large_string(texts.type)
    offsets = np.frombuffer(texts.buffers()[1], np.int64 if wide else np.int32)
    return offsets[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)


def string_data(texts: pa.Array) -> np.ndarray:
    """The data buffer of a string array, as bytes (index it with :func:`string_offsets`)."""
    buffer = texts.buffers()[2]
    return np.frombuffer(buffer, np.uint8) if buffer is not None else np.zeros(0, np.uint8)


def doc_ranges(offsets: np.ndarray, max_bytes: int) -> list[tuple[int, int]]:
    """Consecutive ranges of documents [lo, hi) of about ``max_bytes`` of text each (one long
    document may be more), from the documents' :func:`string_offsets`."""
    n = len(offsets) - 1
    if n == 0:
        return [(0, 0)]
    cuts = np.searchsorted(
        offsets, offsets[0] + np.arange(max_bytes, offsets[-1] - offsets[0], max_bytes)
    )
    bounds = distinct(np.concatenate([[0], np.clip(cuts, 1, n), [n]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def text_bytes(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of ``texts`` (strings without nulls), and their documents' offsets into
    them (the first is 0), without a copy."""
    offsets = string_offsets(texts)
    return string_data(texts)[offsets[0] : offsets[-1]], offsets - offsets[0]


def chunks(texts: pa.Array, max_bytes: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``texts`` (strings without nulls) in groups of documents of about ``max_bytes`` of text:
    each group's UTF-8 bytes, its documents' offsets into them, and its first document."""
    data, offsets = text_bytes(texts)
    for lo, hi in doc_ranges(offsets, max_bytes):
        yield data[offsets[lo] : offsets[hi]], offsets[lo : hi + 1] - offsets[lo], lo


def decode(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code points, their first bytes' positions) of valid UTF-8."""
    lead = np.flatnonzero(data.view(np.int8) >= -64)  # not a continuation byte (10xxxxxx)
    cp = data[lead].astype(np.int32)
    wide = np.flatnonzero(cp >= 0x80)  # decode only the characters beyond ASCII
    if len(wide):
        at = lead[wide]
        b0 = cp[wide]
        padded = np.concatenate([data, np.zeros(3, np.uint8)])
        b1, b2, b3 = ((padded[at + k] & 0x3F).astype(np.int32) for k in (1, 2, 3))
        cp[wide] = np.select(
            [b0 < 0xE0, b0 < 0xF0],
            [((b0 & 0x1F) << 6) | b1, ((b0 & 0x0F) << 12) | (b1 << 6) | b2],
            ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3,
        )
    return cp, lead


def code_points(ranges: Iterable[tuple[int, int]]) -> tuple[np.ndarray, pa.Array]:
    """The code points of ``ranges`` ([lo, hi) each, surrogates left out), and a string array
    holding each of them alone, to ask Arrow's kernels about."""
    cps = np.concatenate([np.arange(lo, hi, dtype=np.uint32) for lo, hi in ranges])
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]  # surrogates are not characters
    data = cps.tobytes().decode("utf-32-le").encode()
    sizes = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    return cps, string_array(data, sizes)


def classify(
    flags: dict[int, str], ranges: Iterable[tuple[int, int]], table: np.ndarray | None = None
) -> np.ndarray:
    """A flag byte per code point (``table``, or a new one of all of Unicode): each flag set where
    its RE2 pattern (a class matching one character, e.g. ``[\\pL_]``) matches the character
    alone. Code points outside ``ranges`` keep their flags (0 in a new table)."""
    if table is None:
        table = np.zeros(0x110000, dtype=np.uint8)
    cps, chars = code_points(ranges)
    for flag, pattern in flags.items():
        table[cps[to_numpy(pc.match_substring_regex(chars, f"^(?:{pattern})$"))]] |= flag
    return table


def stored(name: str, module: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()``'s table of every code point, kept in ``<cache root>/unicode`` between
    processes (building one asks RE2 about 260,000 characters, 50-150 ms on each start). The
    file is named after what the table depends on: pyarrow's version (its RE2 and utf8proc
    Unicode data), this module's source and that of ``module``, the file defining ``build``."""
    inputs = [
        pa.__version__.encode(),
        *(Path(source).read_bytes() for source in (__file__, module)),
    ]
    data = rebuildable(f"unicode/{name}", inputs, lambda: _npy(build()), ".npy")
    with suppress(ValueError):
        table = np.load(io.BytesIO(data))
        if table.shape == (0x110000,) and table.dtype == np.uint8:
            return table
    return build()  # a damaged cache file: built here each time


def _npy(table: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, table)
    return out.getvalue()
