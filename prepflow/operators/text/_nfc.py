"""Which texts NFC can change, found with one RE2 class instead of normalizing every text.

A text is in NFC already when none of its characters can change under NFC or take part in a
composition or reordering: characters whose NFC alone differs (singletons, composition
exclusions), combining marks (canonical combining class above 0), characters that are the second
half of a canonical pair (Hangul jamo and vowel signs with class 0 among them), and characters
unassigned in this Python's Unicode database. The last keeps the test exact across Unicode
versions: by Unicode's normalization stability policy, a text of characters assigned in one
version that is NFC there stays NFC in every later version (Arrow's utf8proc may be newer).
The other texts skip Arrow's NFC, most of the Unicode refiners' time on non-ASCII text.
"""

from __future__ import annotations

import sys
import unicodedata
from functools import cache
from pathlib import Path

import numpy as np

from prepflow.core.paths import rebuildable


@cache
def nfc_unstable() -> str:
    """An RE2 pattern matching any character NFC can change or move (see the module docstring).

    Kept in the cache as text, under the digest of this module's source and named after the
    Unicode version it was built from: reading it back costs well under a millisecond, where
    deriving it from a table of every code point took about 8 ms in each process."""
    name = f"unicode/nfc-unstable-{unicodedata.unidata_version}"
    source = Path(__file__).read_bytes()
    return rebuildable(
        name, [source], lambda: _pattern(_ask_unicodedata()).encode(), ".txt"
    ).decode()


def _pattern(table: np.ndarray) -> str:
    """An RE2 class of the code points set in ``table``, as ranges."""
    cps = np.flatnonzero(table)
    breaks = np.flatnonzero(np.diff(cps) != 1)
    firsts = cps[np.r_[0, breaks + 1]]
    lasts = cps[np.r_[breaks, len(cps) - 1]]
    ranges = "".join(
        rf"\x{{{lo:X}}}" if lo == hi else rf"\x{{{lo:X}}}-\x{{{hi:X}}}"
        for lo, hi in zip(firsts.tolist(), lasts.tolist(), strict=True)
    )
    return f"[{ranges}]"


def _ask_unicodedata() -> np.ndarray:
    """1 for each code point NFC may change or move, from Python's Unicode database (about 1.5 s,
    once per Unicode version: :func:`nfc_unstable` keeps the pattern made from it)."""
    table = np.zeros(0x110000, np.uint8)
    for c in range(0x80, sys.maxunicode + 1):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:  # the second half of a canonical pair may compose
                table[int(parts[1], 16)] = 1
        if (
            unicodedata.category(ch) == "Cn"
            or unicodedata.combining(ch)
            or not unicodedata.is_normalized("NFC", ch)
        ):
            table[c] = 1
    table[0x1100:0x1200] = 1  # Hangul jamo compose algorithmically, beyond the decompositions
    return table
