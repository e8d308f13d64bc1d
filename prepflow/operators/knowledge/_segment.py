"""Cutting Markdown into spans: blocks, sentences and tokens, CJK-aware, never inside a code fence.

Everything here works on ``(start, end)`` character offsets into one text, so a chunk is always an
exact slice of the document and its offsets can be checked.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable

from prepflow.operators.common.textmatch import TOKEN

Span = tuple[int, int]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_BLANK = re.compile(r"\n[ \t]*\n+")
_LINE = re.compile(r"\n")
# a sentence ends at CJK end punctuation (no space follows in Chinese) or at . ! ? before a space
_SENTENCE = re.compile(r"(?<=[。\uff01\uff1f\uff1b])|(?<=[.!?])\s+(?=\S)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


class Protected:
    """Sorted, disjoint spans (code fences) that cuts must not fall inside."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans, self.starts = spans, [s for s, _ in spans]

    def __contains__(self, pos: int) -> bool:
        i = bisect.bisect_right(self.starts, pos) - 1
        return i >= 0 and self.spans[i][0] < pos < self.spans[i][1]


NOTHING = Protected([])


def fences(text: str) -> Protected:
    return Protected([m.span() for m in _FENCE.finditer(text)])


def token_counter(text: str) -> Callable[[Span], int]:
    """Tokens starting inside a span, in O(log n) per call (token starts are indexed once)."""
    starts = [m.start() for m in TOKEN.finditer(text)]
    return lambda span: bisect.bisect_left(starts, span[1]) - bisect.bisect_left(starts, span[0])


def _cut(text: str, span: Span, pattern: re.Pattern[str], protected: Protected) -> list[Span]:
    """``span`` cut where ``pattern`` matches (the match itself is dropped between pieces)."""
    start, end = span
    out, at = [], start
    for m in pattern.finditer(text, start, end):
        if m.start() == start or m.start() in protected:
            continue
        if m.start() > at:
            out.append((at, m.start()))
        at = m.end()
    if at < end:
        out.append((at, end))
    return [(s, e) for s, e in (_strip(text, s, e) for s, e in out) if e > s]


def _strip(text: str, s: int, e: int) -> Span:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def headings(text: str) -> list[tuple[int, int, str]]:
    """``(offset, level, title)`` of every Markdown heading outside code fences."""
    protected = fences(text)
    return [
        (m.start(), len(m.group(1)), m.group(2).strip())
        for m in HEADING.finditer(text)
        if m.start() not in protected
    ]


def heading_path(marks: list[tuple[int, int, str]], offset: int) -> list[str]:
    """Titles of the headings that enclose ``offset`` (outermost first): from the last heading
    at or before it, walk back taking each heading of a higher level than the last taken."""
    i = bisect.bisect_right(marks, (offset, 7, "")) - 1
    path: list[str] = []
    level = 7
    while i >= 0 and level > 1:
        if marks[i][1] < level:
            level = marks[i][1]
            path.append(marks[i][2])
        i -= 1
    return path[::-1]


def sections(text: str, marks: list[tuple[int, int, str]]) -> list[Span]:
    """The text cut before each heading."""
    cuts = sorted({0, *(at for at, _, _ in marks), len(text)})
    spans = (_strip(text, s, e) for s, e in itertools.pairwise(cuts))
    return [(s, e) for s, e in spans if e > s]


def sentences(text: str, span: Span, protected: Protected) -> list[Span]:
    return [
        piece
        for block in _cut(text, span, _BLANK, protected)
        for piece in _cut(text, block, _SENTENCE, protected)
    ]


def tokens(text: str, span: Span) -> list[Span]:
    return [m.span() for m in TOKEN.finditer(text, *span)]


def fit(
    text: str, span: Span, size: Callable[[Span], int], limit: int, protected: Protected
) -> list[Span]:
    """``span`` if it fits in ``limit``, else cut at blank lines, then lines, then sentences,
    then tokens (a code fence is cut only when it alone is too large)."""
    if size(span) <= limit:
        return [span]
    for level, pattern in enumerate((_BLANK, _LINE, _SENTENCE)):
        pieces = _cut(text, span, pattern, protected if level < 2 else NOTHING)
        if len(pieces) > 1:
            return [p for piece in pieces for p in fit(text, piece, size, limit, protected)]
    return pack(text, tokens(text, span), size, limit, 0)


def pack(
    text: str, units: list[Span], size: Callable[[Span], int], limit: int, overlap: int
) -> list[Span]:
    """Consecutive ``units`` joined into spans of at most ``limit`` (one unit may exceed it
    only when it alone does); each span after the first starts with up to ``overlap`` of the
    previous span's last units."""
    out: list[Span] = []
    i = 0
    while i < len(units):
        j = i + 1
        while j < len(units) and size((units[i][0], units[j][1])) <= limit:
            j += 1
        out.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        k = j
        while k - 1 > i and size((units[k - 1][0], units[j - 1][1])) <= overlap:
            k -= 1
        i = k if k < j else j
    return out
