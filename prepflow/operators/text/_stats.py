"""Per-document text measures, computed a whole batch at a time and shared by every rule.

The heuristic filters (Gopher, C4, FineWeb, the DataFlow-style single-rule filters) all read
their measures from one :class:`DocStats`. Each measure is computed lazily, once per batch, with
Arrow compute kernels (RE2 regexes, splits, lengths) and numpy group-bys over flattened
words/lines, so no rule walks the documents in Python.

Words are CJK-aware (:mod:`prepflow.operators.text._words`): every Han/Hiragana/Katakana character is one word, and
leading/trailing punctuation is split off Latin words (like the word tokenizers datatrove uses),
so a Chinese document is never judged by whitespace words. A document is *CJK* when at least
:data:`CJK_DOC_RATIO` of its non-space characters are CJK; measures that only make sense for
space-separated scripts (mean word length) are NaN there, and NaN never fails a rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache, cached_property
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.tables import from_numpy, strings, to_numpy
from prepflow.operators.common import native
from prepflow.operators.common.utf8 import plain, string_data, string_offsets
from prepflow.operators.text._words import Words, words

#: Share of non-space characters that are CJK from which a document is judged as CJK text.
CJK_DOC_RATIO = 0.3
#: Sentence/line terminal marks: ASCII ones (C4, FineWeb) plus the full-width CJK ones.
TERMINAL_PUNCT = r"[.!?。！？…‼‽⁇⁈⁉؟।॥．｡]"  # noqa: RUF001
#: Gopher's bullet marks (datatrove checks "•" and "-"), plus common bullet glyphs.
BULLET_CHARS = "•‣⁃◦●▪-*"  # noqa: RUF001
BULLETS = "[" + BULLET_CHARS.replace("-", r"\-") + "]"
# A sentence ends at a run of terminal marks followed by optional closing quotes/brackets and
# whitespace or the end; CJK full stops need no following space.
SENTENCE_END = r"""[.!?]+["'”’)\]]*(?:\s|$)|[。！？]+"""  # noqa: RUF001


#: The byte classes every :class:`DocStats` counts in one pass, and their columns.
_BYTE_CLASSES = ((9, 10, 11, 12, 13, 32), range(0xE3, 0xEA), range(0x30, 0x3A), (ord("#"),))
_ASCII_SPACE, _CJK_LEAD, _DIGIT, _HASH = range(4)
#: n-gram sizes measured in one C pass at least (Gopher's rules use 2 to 10).
_NGRAMS_AT_ONCE = 10


@cache
def stopwords(lang: str) -> frozenset[str]:
    """The stop-word list shipped for ``lang`` (``stopwords_<lang>.txt`` beside this module)."""
    path = resources.files(__package__) / f"stopwords_{lang}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no stop-word list shipped for language {lang!r} ({path})")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def byte_counts(texts: pa.Array, classes: Sequence[Iterable[int]]) -> np.ndarray:
    """Per text, its UTF-8 bytes in each class of byte values (ASCII classes, UTF-8 lead
    bytes): an (n texts, n classes) array. One C pass for every class, else numpy per class."""
    table = np.zeros(256, dtype=np.uint8)
    for c, values in enumerate(classes, 1):
        table[list(values)] = c
    lib = native.library()
    if lib is not None:
        return lib.count_bytes(texts, table, len(classes))
    return np.stack([_byte_count(texts, table == c) for c in range(1, len(classes) + 1)], 1)


def _byte_count(texts: pa.Array, counted: np.ndarray) -> np.ndarray:
    """Per text, its bytes b with ``counted[b]``."""
    offsets = string_offsets(texts)
    if offsets[-1] == offsets[0]:
        return np.zeros(len(texts), dtype=np.int64)
    data = string_data(texts)[offsets[0] : offsets[-1]]
    starts = offsets[:-1] - offsets[0]
    counts = np.add.reduceat(
        np.take(counted.astype(np.uint8), data), np.minimum(starts, len(data) - 1), dtype=np.int64
    )
    counts[offsets[1:] == offsets[:-1]] = 0  # reduceat gives an empty text one byte
    return counts


def parent_indices(lists: pa.ListArray) -> np.ndarray:
    """For each value of a list array, the index of the list holding it (no nulls)."""
    offsets = to_numpy(lists.offsets).astype(np.int64)
    return np.repeat(np.arange(len(lists), dtype=np.int64), np.diff(offsets))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (a fraction of nothing is no fraction)."""
    num = np.asarray(num, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=np.asarray(den) > 0)


class _Split:
    """Flattened parts of the documents (words, lines): values, owning document of each value,
    per-document counts."""

    def __init__(self, values: pa.Array, doc: np.ndarray, n_docs: int):
        self.values, self.doc, self.n_docs = values, doc, n_docs

    @classmethod
    def of(cls, lists: pa.ListArray, n_docs: int) -> _Split:
        """The values of a list column, each list a document's."""
        return cls(pc.list_flatten(lists), parent_indices(lists), n_docs)

    def per_doc(self, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(self.doc, weights=weights, minlength=self.n_docs)

    def count(self, mask: pa.Array | np.ndarray) -> np.ndarray:
        return self.per_doc(
            np.asarray(to_numpy(mask) if isinstance(mask, pa.Array) else mask, np.float64)
        )


class _Groups:
    """Equal integer keys grouped: a rank id per element, first occurrences, sizes per id.

    One value sort of ``key << bits | position`` (several times faster than a stable argsort)
    when the packed value fits 63 bits; a stable argsort otherwise.
    """

    def __init__(self, keys: np.ndarray, pos: np.ndarray):
        self.pos = pos
        n = len(keys)
        bits = max(n.bit_length(), 1)
        if int(keys.max(initial=0)).bit_length() + bits <= 63:
            packed = np.sort((keys << bits) | np.arange(n, dtype=np.int64))
            order, sorted_keys = packed & ((1 << bits) - 1), packed >> bits
        else:
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
        new = np.ones(n, dtype=bool)
        new[1:] = sorted_keys[1:] != sorted_keys[:-1]
        rank = np.cumsum(new) - 1
        self.ids = np.empty(n, dtype=np.int64)
        self.ids[order] = rank
        self.first = np.zeros(n, dtype=bool)
        self.first[order[new]] = True
        self.counts = np.bincount(rank) if n else np.zeros(0, np.int64)


def _any_of(values: np.ndarray, wanted: set[int]) -> np.ndarray:
    """``np.isin`` for small non-negative integers (word lengths), by table lookup."""
    top = max(wanted, default=0) + 1
    table = np.zeros(top + 1, dtype=bool)
    table[list(wanted)] = True
    return table[np.minimum(values, top)]


def _first_occurrence(doc: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """True where (doc, id) appears for the first time in array order."""
    return _Groups(doc * (int(ids.max(initial=0)) + 1) + ids, doc).first


class DocStats:
    """Lazily computed measures of a batch of texts; every measure is a numpy array per doc."""

    def __init__(self, texts: pa.Array | pa.ChunkedArray):
        self.text = plain(texts)
        self.n = len(self.text)
        self._ngram_levels: dict[int, _Groups] = {}
        self._repetition_table: tuple[np.ndarray, np.ndarray] | None = None

    # ---- characters ------------------------------------------------------------------------

    @cached_property
    def n_chars(self) -> np.ndarray:
        return to_numpy(pc.utf8_length(self.text)).astype(np.int64)

    def count(self, pattern: str, *, regex: bool = True, ignore_case: bool = False) -> np.ndarray:
        """Occurrences of ``pattern`` in each document."""
        fn = pc.count_substring_regex if regex else pc.count_substring
        return to_numpy(fn(self.text, pattern, ignore_case=ignore_case)).astype(np.int64)

    @cached_property
    def _bytes(self) -> np.ndarray:
        """Per document, its bytes of each of :data:`_BYTE_CLASSES`, in one pass."""
        return byte_counts(self.text, _BYTE_CLASSES)

    @cached_property
    def n_non_space_chars(self) -> np.ndarray:
        """Characters that are not ASCII whitespace (tab to carriage return, space)."""
        return self.n_chars - self._bytes[:, _ASCII_SPACE]

    @cached_property
    def is_cjk(self) -> np.ndarray:
        """At least CJK_DOC_RATIO of non-space characters in U+3000-U+9FFF (UTF-8 leads E3-E9)."""
        return self._bytes[:, _CJK_LEAD] >= CJK_DOC_RATIO * np.maximum(self.n_non_space_chars, 1)

    @cached_property
    def digit_ratio(self) -> np.ndarray:
        """ASCII digits over all characters."""
        return _ratio(self._bytes[:, _DIGIT], self.n_chars)

    @cached_property
    def sentences(self) -> np.ndarray:
        return self.count(SENTENCE_END)

    # ---- words -----------------------------------------------------------------------------

    @cached_property
    def _cut(self) -> Words:
        return words(self.text)

    @cached_property
    def _words(self) -> _Split:
        return _Split(self._cut.values, self._cut.doc, self.n)

    @cached_property
    def _word_len(self) -> np.ndarray:
        return self._cut.length.astype(np.float64)

    @cached_property
    def _lower_words(self) -> pa.Array:
        return pc.utf8_lower(self._words.values)

    @cached_property
    def _word_ids(self) -> np.ndarray:
        """Exact ids of (lower-cased) words across the batch."""
        return to_numpy(pc.dictionary_encode(self._lower_words).indices).astype(np.int64)

    @cached_property
    def _symbol_word(self) -> np.ndarray:
        """Words of punctuation and symbols only."""
        return self._cut.symbol

    @cached_property
    def n_words(self) -> np.ndarray:
        """All tokens, punctuation-only tokens included (denominator of Gopher's ratios)."""
        return self._words.per_doc().astype(np.int64)

    @cached_property
    def word_count(self) -> np.ndarray:
        """Words that are not punctuation/symbols only (Gopher's document length)."""
        return self._words.count(~self._symbol_word).astype(np.int64)

    @cached_property
    def mean_word_length(self) -> np.ndarray:
        """Mean length of non-symbol words; NaN for CJK documents and documents without words."""
        real = ~self._symbol_word
        total = self._words.per_doc(self._word_len * real)
        mean = np.divide(
            total, self.word_count, out=np.full(self.n, np.nan), where=self.word_count > 0
        )
        mean[self.is_cjk] = np.nan
        return mean

    @cached_property
    def alpha_word_ratio(self) -> np.ndarray:
        """Fraction of tokens with a letter."""
        return _ratio(self._words.count(~self._cut.no_letter), self.n_words)

    @cached_property
    def all_caps_word_ratio(self) -> np.ndarray:
        """Fraction of words with an upper-case letter and no lower-case one (``str.isupper``)."""
        return _ratio(self._words.count(self._cut.all_caps), self.word_count)

    @cached_property
    def unique_word_ratio(self) -> np.ndarray:
        """Distinct lower-cased non-symbol words over non-symbol words."""
        real = ~self._symbol_word
        first = np.zeros(len(real), dtype=bool)
        idx = np.flatnonzero(real)
        first[idx] = _first_occurrence(self._words.doc[idx], self._word_ids[idx])
        return _ratio(self._words.count(first), self.word_count)

    def hash_word_ratio(self) -> np.ndarray:
        return _ratio(self._bytes[:, _HASH], self.n_words)

    def ellipsis_word_ratio(self) -> np.ndarray:
        if self._line_marks is not None:
            return _ratio(self._line_marks[:, 3], self.n_words)
        return _ratio(self.count(r"\.\.\.|…"), self.n_words)

    def stopword_count(self, words: Iterable[str] | None = None) -> np.ndarray:
        """Distinct stop words present. ``None``: the shipped list, Chinese for CJK documents."""
        if words is not None:
            lists = [sorted({w.lower() for w in words})]
        else:
            lists = [sorted(stopwords("en")), sorted(stopwords("zh"))]
        vocab = [w for words_of in lists for w in words_of]
        # Arrow lower-cases code point by code point, so a word can only be a stop word of its
        # own length: lower-case and look up just those (of the document's script's list)
        sized = [_any_of(self._cut.length, {len(w) for w in words_of}) for words_of in lists]
        if len(lists) > 1:  # each word against the list of its document's script
            sized = [np.where(self.is_cjk[self._words.doc], sized[1], sized[0])]
        rows = np.flatnonzero(sized[0])
        lowered = pc.utf8_lower(self._words.values.take(from_numpy(rows)))
        index = pc.index_in(lowered, strings(vocab))
        hits = to_numpy(pc.is_valid(index))
        which = to_numpy(index.filter(pc.is_valid(index))).astype(np.int64)
        doc = self._words.doc[rows[hits]]
        if len(lists) > 1:  # count each script's list only in documents of that script
            own = (which >= len(lists[0])) == self.is_cjk[doc]
            doc, which = doc[own], which[own]
        return np.bincount(doc[_first_occurrence(doc, which)], minlength=self.n)

    # ---- n-gram repetition (Gopher) --------------------------------------------------------

    @cached_property
    def _word_chars_cum(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self._word_len)])

    @cached_property
    def _word_chars(self) -> np.ndarray:
        """Characters in words (whitespace excluded): the denominator of n-gram fractions."""
        return self._words.per_doc(self._word_len)

    def _ngrams(self, n: int) -> _Groups:
        """The word n-grams of each document that may repeat, grouped by (document, n-gram).

        Level n ranks the pairs (rank of the (n-1)-gram at i, word at i+n-1), starting from
        (document, word): exact, no hashing. Only n-grams whose (n-1)-gram prefix repeats can
        repeat, so each level keeps just those positions; every n-gram left out occurs once.
        """
        levels = self._ngram_levels
        if n in levels:
            return levels[n]
        doc, words = self._words.doc, self._word_ids
        width = int(words.max(initial=0)) + 1
        if n == 1:
            levels[1] = _Groups(doc * width + words, np.arange(len(words)))
            return levels[1]
        prev = self._ngrams(n - 1)
        # keep repeated (n-1)-grams that extend by one word of the same document
        ext = prev.pos + n - 1
        ok = (prev.counts[prev.ids] > 1) & (ext < len(words))
        ok[ok] = doc[ext[ok]] == doc[prev.pos[ok]]
        levels[n] = _Groups(prev.ids[ok] * width + words[ext[ok]], prev.pos[ok])
        return levels[n]

    def _repetition(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Both n-gram measures' numerators for every n up to at least ``n`` (columns n - 1), in
        one C pass over the word ids; None without the C library (then :meth:`_ngrams`)."""
        lib = native.library()
        if lib is None:
            return None
        if self._repetition_table is None or self._repetition_table[0].shape[1] < n:
            offsets = np.searchsorted(self._words.doc, np.arange(self.n + 1))
            self._repetition_table = lib.ngram_repetition(
                self._word_ids, self._cut.length, offsets, max(n, _NGRAMS_AT_ONCE)
            )
        return self._repetition_table

    def top_ngram_char_frac(self, n: int) -> np.ndarray:
        """Characters of the most frequent repeated n-gram (count x length) over word characters."""
        if (table := self._repetition(n)) is not None:
            return _ratio(table[0][:, n - 1], self._word_chars)
        g = self._ngrams(n)
        start = g.pos[g.first]
        counts = g.counts[g.ids[g.first]]
        rep = counts > 1
        start, counts = start[rep], counts[rep]
        doc = self._words.doc[start]
        length = self._word_chars_cum[start + n] - self._word_chars_cum[start]
        order = np.lexsort((length, counts, doc))  # per doc, the last is the most frequent
        doc, counts, length = doc[order], counts[order], length[order]
        last = np.flatnonzero(np.r_[doc[1:] != doc[:-1], True]) if len(doc) else doc
        out = np.zeros(self.n)
        out[doc[last]] = counts[last] * length[last]
        return _ratio(out, self._word_chars)

    def dup_ngram_char_frac(self, n: int) -> np.ndarray:
        """Characters of words covered by repeated (not first) occurrences of any n-gram."""
        if (table := self._repetition(n)) is not None:
            return _ratio(table[1][:, n - 1], self._word_chars)
        g = self._ngrams(n)
        starts = g.pos[~g.first]
        cover = np.zeros(len(self._word_len) + 1, dtype=np.int64)
        np.add.at(cover, starts, 1)
        np.add.at(cover, starts + n, -1)
        covered = np.cumsum(cover[:-1]) > 0
        return _ratio(self._words.per_doc(self._word_len * covered), self._word_chars)

    # ---- lines and paragraphs --------------------------------------------------------------

    @cached_property
    def _lines(self) -> _Split:
        """Non-blank lines (split on newlines)."""
        return _nonblank(pc.split_pattern(self.text, "\n"), self.n)

    @cached_property
    def _paragraphs(self) -> _Split:
        """Non-blank paragraphs (split on blank lines)."""
        return _nonblank(pc.split_pattern_regex(self.text, r"\n[ \t\r]*\n"), self.n)

    @cached_property
    def _line_marks(self) -> np.ndarray | None:
        """Per document, in one C pass: non-blank lines, bullet lines, lines ending in an
        ellipsis, ellipses (None without the C library: then the regexes count them)."""
        lib = native.library()
        return None if lib is None else lib.line_marks(self.text, BULLET_CHARS)

    @cached_property
    def n_lines(self) -> np.ndarray:
        if self._line_marks is not None:
            return self._line_marks[:, 0]
        return self._lines.per_doc().astype(np.int64)

    def line_ratio(self, pattern: str, *, ignore_case: bool = False) -> np.ndarray:
        """Fraction of non-blank lines matching the regex ``pattern``."""
        return _ratio(self.line_count(pattern, ignore_case=ignore_case), self.n_lines)

    def line_count(self, pattern: str, *, ignore_case: bool = False) -> np.ndarray:
        hit = pc.match_substring_regex(self._lines.values, pattern, ignore_case=ignore_case)
        return self._lines.count(hit).astype(np.int64)

    @cached_property
    def bullet_line_ratio(self) -> np.ndarray:
        if self._line_marks is not None:
            return _ratio(self._line_marks[:, 1], self.n_lines)
        return self.line_ratio(rf"^\s*{BULLETS}")

    @cached_property
    def ellipsis_line_ratio(self) -> np.ndarray:
        if self._line_marks is not None:
            return _ratio(self._line_marks[:, 2], self.n_lines)
        return self.line_ratio(r"(\.\.\.|…)\s*$")

    @cached_property
    def terminal_punct_line_ratio(self) -> np.ndarray:
        return self.line_ratio(rf"{TERMINAL_PUNCT}\s*$")

    def short_line_ratio(self, max_chars: int, max_chars_cjk: int) -> np.ndarray:
        """Fraction of non-blank lines of at most ``max_chars`` characters (``max_chars_cjk``
        in CJK documents, where one character carries about as much as three Latin ones)."""
        lengths = to_numpy(pc.utf8_length(self._lines.values))
        limit = np.where(self.is_cjk[self._lines.doc], max_chars_cjk, max_chars)
        return _ratio(self._lines.count(lengths <= limit), self.n_lines)

    @cached_property
    def newline_word_ratio(self) -> np.ndarray:
        return _ratio(self.count("\n", regex=False), self.n_words)

    @cached_property
    def _line_dups(self) -> tuple[np.ndarray, np.ndarray]:
        return _dups(self._lines)

    @cached_property
    def _para_dups(self) -> tuple[np.ndarray, np.ndarray]:
        return _dups(self._paragraphs)

    @cached_property
    def dup_line_frac(self) -> np.ndarray:
        return _ratio(self._line_dups[0], self.n_lines)

    @cached_property
    def dup_line_char_frac(self) -> np.ndarray:
        return _ratio(self._line_dups[1], self.n_chars)

    @cached_property
    def dup_para_frac(self) -> np.ndarray:
        return _ratio(self._para_dups[0], self._paragraphs.per_doc())

    @cached_property
    def dup_para_char_frac(self) -> np.ndarray:
        return _ratio(self._para_dups[1], self.n_chars)


def _nonblank(lists: pa.ListArray, n_docs: int) -> _Split:
    split = _Split.of(lists, n_docs)
    keep = pc.invert(pc.match_substring_regex(split.values, r"^\s*$"))
    split.values = split.values.filter(keep)
    split.doc = split.doc[to_numpy(keep)]
    return split


def _dups(split: _Split) -> tuple[np.ndarray, np.ndarray]:
    """(repeated elements, characters in repeated elements) per document; first ones excluded."""
    ids = to_numpy(pc.dictionary_encode(split.values).indices).astype(np.int64)
    dup = ~_first_occurrence(split.doc, ids)
    chars = to_numpy(pc.utf8_length(split.values)).astype(np.float64)
    return split.count(dup), split.per_doc(chars * dup)


def _re2_escape(s: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", s)


def compile_words(words: Iterable[str]) -> str:
    """One RE2 pattern matching any of ``words``: whole words for Latin, substrings for CJK."""
    latin, cjk = [], []
    for w in sorted({w.strip().lower() for w in words if w.strip()}):
        (cjk if re.search(r"[\u3040-\u30ff\u3400-\u9fff]", w) else latin).append(_re2_escape(w))
    parts = ([rf"\b(?:{'|'.join(latin)})\b"] if latin else []) + (["|".join(cjk)] if cjk else [])
    return "|".join(parts)
