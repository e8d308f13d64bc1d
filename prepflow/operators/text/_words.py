"""The words of a batch of texts, cut in one vectorized pass over their UTF-8 bytes.

A word is a run of characters between whitespace, with these cuts inside a run: every CJK
(Han, Hiragana, Katakana) character is a word of its own, and a run of punctuation or symbols
(``\\p{P}``, ``\\p{S}``) is cut off the start of a run that begins at an ASCII space, a CJK
character or the start of the text, and off the end of a run that ends at one of those or the end
of the text (so "(hello)," gives "(", "hello", "),"; "e.g." gives "e.g", "."; "U.S.A" stays).
This is what three regex rewrites and a whitespace split give (the reference that
``tests/operators/text/test_words.py`` holds this to), at a fraction of their cost: the code
points are decoded and classified in one C pass (``operators.common.native``; :func:`_cut` is
its numpy twin, for machines without a C compiler), and each word's letters and symbols are
flagged on the way, so the filters' word measures need no further regex pass.

The character classes come from RE2 and Arrow themselves (:func:`char_flags`), so the two cuts
agree on every code point.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.tables import from_numpy, string_array, to_numpy
from prepflow.operators.common import native
from prepflow.operators.common.utf8 import (
    CHUNK_BYTES,
    chunks,
    classify,
    code_points,
    decode,
    plain,
    stored,
    text_bytes,
)

CJK_CLASS = r"\p{Han}\p{Hiragana}\p{Katakana}"
PUNCT_OR_SYMBOL = r"[\p{P}\p{S}]"

# code point flags (one byte per code point)
SPACE = 1  # whitespace to Arrow's utf8_split_whitespace (Unicode)
ASCII_SPACE = 2  # RE2's \s: tab, newline, form feed, carriage return, space
CJK = 4
SYMBOL = 8  # \p{P} or \p{S}
LETTER = 16
UPPER = 32
LOWER = 64
WIDE_SPACE = 128  # whitespace beyond ASCII (no-break, ideographic): 2-3 bytes in UTF-8
#: Code points above this hold no letter, symbol, space or CJK character (planes 4-16 are
#: unassigned, tags, variation selectors and private use), so their flags are 0.
_CLASSIFIED = 0x40000


@cache
def char_flags() -> np.ndarray:
    """The flags of every code point, asked of RE2 (classes) and Arrow (whitespace) over one
    string of each code point below :data:`_CLASSIFIED` (kept in the cache: ``utf8.stored``)."""
    return stored("word-flags", __file__, _ask_char_flags)


def _ask_char_flags() -> np.ndarray:
    ranges = [(0, _CLASSIFIED)]
    cps, chars = code_points(ranges)
    flags = np.zeros(0x110000, dtype=np.uint8)
    # a lone whitespace character splits into two empty strings
    spaces = cps[to_numpy(pc.list_value_length(pc.utf8_split_whitespace(chars))) == 2]
    flags[spaces] |= SPACE
    flags[spaces[spaces >= 0x80]] |= WIDE_SPACE
    patterns = {
        ASCII_SPACE: r"\s",
        CJK: f"[{CJK_CLASS}]",
        SYMBOL: PUNCT_OR_SYMBOL,
        LETTER: r"\pL",
        UPPER: r"\p{Lu}",
        LOWER: r"\p{Ll}",
    }
    return classify(patterns, ranges, flags)


@dataclass
class Words:
    """The words of a batch, flattened: each word's text, document, length in characters, and
    whether it is all punctuation/symbols, has no letter, is in capitals (an upper-case letter
    and no lower-case one)."""

    values: pa.Array
    doc: np.ndarray
    length: np.ndarray
    symbol: np.ndarray
    no_letter: np.ndarray
    all_caps: np.ndarray


def words(texts: pa.Array | pa.ChunkedArray) -> Words:
    """The words of ``texts`` (strings; a null has none); see the module docstring."""
    lib, text = native.library(), plain(texts)
    if lib is None:
        parts = [_cut(*chunk) for chunk in chunks(text, CHUNK_BYTES)]
        kept: bytes | np.ndarray = b"".join(p[0] for p in parts)
        sizes, doc, length, any_flag, all_flag = (
            np.concatenate([p[k] for p in parts]) for k in range(1, 6)
        )
    else:
        kept, sizes, doc, length, any_flag, all_flag = lib.cut_words(
            *text_bytes(text), char_flags()
        )
    return Words(
        string_array(kept, sizes),
        doc,
        length,
        symbol=(all_flag & SYMBOL).astype(bool),
        no_letter=~(any_flag & LETTER).astype(bool),
        all_caps=(any_flag & (UPPER | LOWER)) == UPPER,
    )


def word_lists(texts: pa.Array) -> pa.ListArray:
    """The words of each text, as a list per text."""
    cut = words(texts)
    offsets = np.searchsorted(cut.doc, np.arange(len(texts) + 1)).astype(np.int32)
    return pa.ListArray.from_arrays(from_numpy(offsets), cut.values)


def _cut(
    data: np.ndarray, offsets: np.ndarray, first_doc: int
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The words of the documents whose UTF-8 bytes are ``data`` (``offsets`` into it): their
    bytes back to back, byte sizes, documents (from ``first_doc``), lengths, and the OR and AND
    of their characters' flags (what ``native.Native.cut_words`` gives, in numpy, here a chunk
    at a time)."""
    table = char_flags()
    if data.size and data.max() < 0x80:  # ASCII: a byte is a character
        flags, lead, starts = table[data], None, offsets
    else:
        cp, lead = decode(data)
        flags, starts = table[cp], np.searchsorted(lead, offsets)  # documents' first characters
    m = len(flags)
    first = np.zeros(m + 1, dtype=bool)
    first[starts[:-1]] = True  # an empty document's start is its successor's
    last = np.zeros(m + 1, dtype=bool)
    last[starts[1:] - 1] = True
    first, last = first[:m], last[:m]

    space = (flags & SPACE).astype(bool)
    cjk = (flags & CJK).astype(bool)
    punct = (flags & (SYMBOL | CJK)) == SYMBOL
    # a word starts after a space or at (and after) a CJK character
    start = ~space & (first | cjk)
    start[1:] |= ~space[1:] & ((flags[:-1] & (SPACE | CJK)) != 0)
    # runs of punctuation: cut after one that begins at an edge (the text's, an ASCII space's,
    # a CJK character's) and ends before a word character, and before one that begins after a
    # word character and ends at an edge
    edge = (flags & (ASCII_SPACE | CJK)) != 0
    other = ~(space | cjk | punct)
    boundary = punct.copy()
    boundary[1:] ^= punct[:-1]
    boundary |= first & punct
    run_start = np.flatnonzero(boundary & punct)  # first of each run
    run_end = _run_ends(punct, last)
    after = run_start - 1  # the character before the run (-1: none)
    at_edge_before = first[run_start] | edge[after]
    other_before = ~first[run_start] & other[after]
    before = np.minimum(run_end + 1, m - 1)
    at_edge_after = last[run_end] | edge[before]
    other_after = ~last[run_end] & other[before]
    start[run_end[at_edge_before & other_after] + 1] = True  # "(hello": cut after the run
    start[run_start[other_before & at_edge_after]] = True  # "hello),": cut before the run

    chars = np.flatnonzero(~space)
    word_at = np.flatnonzero(start[chars])  # each word's first character, among ``chars``
    n_words = len(word_at)
    length = np.diff(np.append(word_at, len(chars)))
    per_doc = np.diff(np.searchsorted(chars[word_at], starts))
    doc = np.repeat(np.arange(first_doc, first_doc + len(starts) - 1), per_doc)
    f = flags[chars]
    any_flag = np.bitwise_or.reduceat(f, word_at) if n_words else f[:0]
    all_flag = np.bitwise_and.reduceat(f, word_at) if n_words else f[:0]
    if lead is None:
        kept, sizes = data[~space], length
    else:
        ends = np.append(lead, len(data))
        last_char = chars[np.append(word_at[1:], len(chars))[:n_words] - 1]
        sizes = ends[last_char + 1] - lead[chars[word_at]]
        keep = _KEEP_BYTE[data]  # every byte but ASCII whitespace
        wide = np.flatnonzero(flags & WIDE_SPACE)
        for k in range(4):
            keep[lead[wide] + k] = False
            wide = wide[ends[wide + 1] - lead[wide] > k + 1]
        kept = data[keep]
    return kept.tobytes(), sizes.astype(np.int64), doc, length.astype(np.int64), any_flag, all_flag


#: Per byte value: not ASCII whitespace (a byte of a wider character is kept here).
_KEEP_BYTE = np.array([chr(b).isspace() is False or b >= 0x80 for b in range(256)])


def _run_ends(mask: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The last position of each run of True in ``mask`` (runs end at documents' ends)."""
    end = mask.copy()
    end[:-1] &= ~mask[1:] | last[:-1]
    return np.flatnonzero(end)
