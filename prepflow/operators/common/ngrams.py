r"""Normalisation, tokenisation and n-gram hashing shared by the dedup and decontamination filters.

Everything works on whole Arrow columns (RE2 kernels) and flat numpy arrays, never a Python loop
over tokens, so shingling costs a few microseconds per document. Tokens are cut in one C pass
over the normalised texts' UTF-8 bytes (``operators.common.native``; :func:`_cut` is its numpy
twin), with the character classes asked of RE2 itself
(:func:`prepflow.operators.common.utf8.classify`): exactly what splitting on
``[^\p{L}\p{N}\p{M}_]+`` gives, after spacing out the characters of scripts without spaces.

Tokens are maximal runs of letters, digits, combining marks and ``_``; everything else (spaces,
punctuation, symbols) only separates them. Scripts written without spaces (Han, Hiragana,
Katakana, Thai, Lao, Khmer, Myanmar) have no word boundaries to find, so in word mode each of
their characters is a token of its own: inside such a run a word n-gram is a character n-gram,
while Latin words in the same document stay whole words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.tables import from_numpy, scalar, string_array, to_numpy
from prepflow.operators.common import native
from prepflow.operators.common.utf8 import (
    CHUNK_BYTES,
    chunks,
    classify,
    decode,
    plain,
    stored,
)

_SPACELESS = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]"
_TOKEN_CHAR = r"[\p{L}\p{N}\p{M}_]"
_PUNCTUATION = r"[\p{P}\p{S}]+"
_WHITESPACE = r"[\s\v\p{Z}\x{85}]+"  # RE2's \s alone is ASCII-only
_LENGTH_SALT = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Ragged:
    """One flat array of per-row values: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""

    values: np.ndarray
    offsets: np.ndarray  # int64, one more than the number of rows

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]


def normalise(
    texts: pa.Array,
    *,
    nfkc: bool = True,
    lowercase: bool = True,
    strip_punctuation: bool = False,
    whitespace: str = "keep",
) -> pa.Array:
    """Canonical form of each text (nulls stay null).

    ``whitespace`` is ``keep``, ``collapse`` (runs become one space, ends trimmed) or ``remove``.
    Punctuation and symbols (Unicode classes P and S) are deleted by ``strip_punctuation``.
    """
    if nfkc:
        texts = pc.utf8_normalize(texts, form="NFKC")
    if lowercase:
        texts = pc.utf8_lower(texts)
    if strip_punctuation:
        texts = pc.replace_substring_regex(texts, _PUNCTUATION, "")
    if whitespace == "collapse":
        texts = pc.utf8_trim_whitespace(replace_space_runs(texts, " "))
    elif whitespace == "remove":
        texts = replace_space_runs(texts, "")
    elif whitespace != "keep":
        raise ValueError(f"whitespace must be keep, collapse or remove, not {whitespace!r}")
    return texts


def replace_space_runs(texts: pa.Array, with_: str) -> pa.Array:
    """Each run of whitespace (``_WHITESPACE``) replaced by ``with_``: one C pass where the
    native library is built, else RE2's."""
    lib = native.library()
    if lib is None:
        return pc.replace_substring_regex(texts, _WHITESPACE, with_)
    return lib.replace_space_runs(texts, with_)


def tokens(texts: pa.Array, *, nfkc: bool, lowercase: bool, split_spaceless: bool) -> pa.ListArray:
    """The tokens of each text (see the module docstring); a null text has none."""
    texts = plain(normalise(texts, nfkc=nfkc, lowercase=lowercase))
    table, lib = _token_classes(), native.library()
    cut = _cut if lib is None else lib.cut_tokens
    parts = [
        cut(data, offsets, table, split_spaceless)
        for data, offsets, _ in chunks(texts, CHUNK_BYTES)
    ]
    values = string_array(b"".join(p[0] for p in parts), np.concatenate([p[1] for p in parts]))
    list_offsets = np.zeros(len(texts) + 1, np.int32)
    np.cumsum(np.concatenate([p[2] for p in parts]), out=list_offsets[1:])
    return pa.ListArray.from_arrays(from_numpy(list_offsets), values)


_WORD, _SPACELESS_CHAR = 1, 2
#: The code points asked of RE2: planes 0-3, and the start of plane 14 (tags, and variation
#: selectors, which are marks); the rest is unassigned or private use, no letter, digit or mark.
_CLASSIFIED = [(0, 0x40000), (0xE0000, 0xE1000)]


@cache
def _token_classes() -> np.ndarray:
    """Each code point's flags: a token character, a character of a script without spaces
    (kept in the cache: ``utf8.stored``)."""
    return stored(
        "token-flags",
        __file__,
        lambda: classify({_WORD: _TOKEN_CHAR, _SPACELESS_CHAR: _SPACELESS}, _CLASSIFIED),
    )


def _cut(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray, split_spaceless: bool
) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The tokens of the documents whose UTF-8 bytes are ``data`` (``offsets`` into it): their
    bytes back to back, their sizes in bytes, and the number of tokens of each document."""
    if not data.size or data.max() < 0x80:  # ASCII: a byte is a character
        flags, lead, starts = table[data], None, offsets
    else:
        cp, lead = decode(data)
        flags, starts = table[cp], np.searchsorted(lead, offsets)  # documents' first characters
    m = len(flags)
    word = (flags & _WORD) != 0
    # a token starts at a token character after a non-token character, or a document's start,
    # or at or after a character of a script without spaces
    start = np.ones(m + 1, dtype=bool)
    start[1:m] = ~word[:-1]
    if split_spaceless:
        alone = word & ((flags & _SPACELESS_CHAR) != 0)
        start[:m] |= alone
        start[1:m] |= alone[:-1]
    start[starts[:-1]] = True
    chars = np.flatnonzero(word)
    token_at = np.flatnonzero(start[chars])  # each token's first character, among ``chars``
    per_doc = np.diff(np.searchsorted(chars[token_at], starts))
    if lead is None:
        return data[word].tobytes(), np.diff(np.append(token_at, len(chars))), per_doc
    ends = np.append(lead, len(data))
    last_char = chars[np.append(token_at[1:], len(chars)) - 1]
    sizes = ends[last_char + 1] - lead[chars[token_at]]
    owner = np.cumsum(data.view(np.int8) >= -64) - 1  # each byte's character
    return data[word[owner]].tobytes(), sizes, per_doc


def word_hashes(texts: pa.Array, *, nfkc: bool = True, lowercase: bool = True) -> Ragged:
    """64-bit hashes of each text's tokens, in order."""
    import xxhash

    toks = tokens(texts, nfkc=nfkc, lowercase=lowercase, split_spaceless=True)
    encoded = pc.dictionary_encode(toks.values)
    vocab = encoded.dictionary.cast(pa.binary()).to_pylist()
    h = np.fromiter(map(xxhash.xxh3_64_intdigest, vocab), np.uint64, count=len(vocab))
    return Ragged(h[to_numpy(encoded.indices)], to_numpy(toks.offsets).astype(np.int64))


def char_hashes(texts: pa.Array, *, nfkc: bool = True, lowercase: bool = True) -> Ragged:
    """Hashes of each text's characters, once normalised to its tokens joined by single spaces."""
    toks = tokens(texts, nfkc=nfkc, lowercase=lowercase, split_spaceless=False)
    joined = pc.binary_join(toks, scalar(" ", toks.type.value_type))
    lengths = to_numpy(pc.utf8_length(joined)).astype(np.int64)
    codepoints = np.frombuffer("".join(joined.to_pylist()).encode("utf-32-le"), np.uint32)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Ragged(mix64(codepoints.astype(np.uint64)), offsets)


def ngram_hashes(toks: Ragged, n: int) -> Ragged:
    """64-bit hashes of each row's token n-grams (shingles), in order.

    A row with fewer than ``n`` tokens (but at least one) gives one shingle of all its tokens, so
    short texts still have a fingerprint; a row without tokens gives none. A shingle's hash
    depends on its tokens, their order and their number.
    """
    lengths, first, end = toks.lengths, toks.offsets[:-1], toks.offsets[1:]
    total = len(toks.values)
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1)), out=offsets[1:])
    # A shingle starts at every token but the last n - 1 of a row; a short row starts one, at
    # its first token. Every position's n-token window is summed from contiguous slices; the
    # windows of short rows, which run into the next row, are then redone with their own tokens.
    tail = np.minimum(lengths, n - 1)
    tail[short] -= 1
    no_start = np.repeat(end - tail, tail) + _ramps(tail)
    starts = np.ones(total, bool)
    starts[no_start] = False
    padded = np.concatenate([toks.values, np.zeros(n, np.uint64)])
    window = np.full(total, (n * int(_LENGTH_SALT)) % 2**64, np.uint64)
    term = np.empty(total, np.uint64)
    mults = _multipliers(n)
    for k in range(n):
        np.add(window, np.multiply(padded[k : k + total], mults[k], out=term), out=window)
    acc = window[starts]
    if len(short):
        at, width = first[short], lengths[short]
        redo = width.astype(np.uint64) * _LENGTH_SALT
        for k in range(int(width.max())):
            redo += np.where(k < width, padded[at + k], np.uint64(0)) * mults[k]
        acc[offsets[short]] = redo
    return Ragged(mix64(acc), offsets)


def mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijection on uint64 that spreads every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _ramps(sizes: np.ndarray) -> np.ndarray:
    """``0, 1, ..., size - 1`` for each size, concatenated."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _multipliers(n: int) -> np.ndarray:
    """Odd per-position constants, so a shingle's hash depends on token order."""
    return mix64(np.arange(1, n + 1, dtype=np.uint64)) | np.uint64(1)
