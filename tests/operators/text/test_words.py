"""The vectorized word cut against its definition: three regex rewrites and a whitespace split,
on every document of the shared corpora and on random texts built from the characters where
the rules meet (spaces of every kind, CJK characters that are also symbols, punctuation, case)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from prepflow.operators.text import _words
from prepflow.operators.text._words import CJK_CLASS, PUNCT_OR_SYMBOL, words
from tests.conftest import shared_data_dir

CORPORA = shared_data_dir() / "corpora"
#: every test runs with the C cutters and with the numpy ones
pytestmark = pytest.mark.usefixtures("cutter")


def regex_words(texts: pa.Array) -> list[list[str]]:
    """The definition: CJK characters apart, punctuation split off at the edges, then split."""
    s = pc.replace_substring_regex(texts, f"[{CJK_CLASS}]", r" \0 ")
    s = pc.replace_substring_regex(s, rf"{PUNCT_OR_SYMBOL}+(?:\s|$)", r" \0")
    s = pc.replace_substring_regex(s, rf"(?:^|\s){PUNCT_OR_SYMBOL}+", r"\0 ")
    lists = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(s)).to_pylist()
    return [[w for w in ws if w] for ws in lists]


def per_doc(texts: pa.Array) -> list[list[str]]:
    cut = words(texts)
    out: list[list[str]] = [[] for _ in range(len(texts))]
    for doc, word in zip(cut.doc.tolist(), cut.values.to_pylist(), strict=True):
        out[doc].append(word)
    return out


def assert_same_words(texts: list[str]) -> None:
    array = pa.array(texts, pa.string())
    expected, got = regex_words(array), per_doc(array)
    for text, want, have in zip(texts, expected, got, strict=True):
        assert have == want, f"words of {text!r}"


def assert_flags(texts: list[str]) -> None:
    """Lengths and flags against the regexes the filters used before."""
    cut = words(pa.array(texts, pa.string()))
    values = cut.values
    checks = {
        "length": (cut.length, pc.utf8_length(values)),
        "symbol": (cut.symbol, pc.match_substring_regex(values, f"^{PUNCT_OR_SYMBOL}+$")),
        "no_letter": (cut.no_letter, pc.match_substring_regex(values, r"^\PL*$")),
        "all_caps": (
            cut.all_caps,
            pc.match_substring_regex(values, r"^[^\p{Ll}]*\p{Lu}[^\p{Ll}]*$"),
        ),
    }
    for name, (have, want) in checks.items():
        want = want.to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(have != want)
        assert not len(bad), f"{name} of {values[int(bad[0])]!r}"


@pytest.mark.parametrize("corpus", sorted(p.name for p in CORPORA.glob("*.jsonl")))
def test_every_document_of_the_corpora_cuts_as_the_regexes_do(
    corpus: str, shared_data: Path
) -> None:
    with (shared_data / "corpora" / corpus).open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    assert_same_words(texts)
    assert_flags(texts)


# the characters where the rules meet: every kind of space, CJK letters and CJK symbols
# (radicals, circled katakana), punctuation and symbols, letters of both cases, digits, marks
PIECES = list(" \t\n\r\f\v\u00a0\u3000\u2028\x1c") + list("中文の日カ") + ["\u2e80", "\u32d0"]
PIECES += list(".,!?()\"'-#…。\uff0c\uff01\uff1b$+©") + list("aZéÉßǅ1٣")
PIECES += ["\u0301", "\U0001f600", "\U00020000"]


def test_random_texts_cut_as_the_regexes_do() -> None:
    rng = random.Random(7)
    texts = ["", " ", "...", "a", "中", "!中!", "(hello),", "e.g.", "U.S.A", "\u2e80!a", "a!\u2e80"]
    texts += [
        "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 24))) for _ in range(20_000)
    ]
    assert_same_words(texts)
    assert_flags(texts)


def test_a_batch_cut_in_several_chunks_is_the_batch_cut_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(3)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 60))) for _ in range(3_000)]
    array = pa.array(texts, pa.string())
    whole = words(array)
    monkeypatch.setattr(_words, "CHUNK_BYTES", 200)
    chunked = words(array)
    assert chunked.values.equals(whole.values)
    for name in ("doc", "length", "symbol", "no_letter", "all_caps"):
        assert np.array_equal(getattr(chunked, name), getattr(whole, name)), name


def test_sliced_and_empty_inputs() -> None:
    array = pa.array(["skip me", "two words", "", "三个字"], pa.string())
    cut = words(array.slice(1))
    assert cut.values.to_pylist() == ["two", "words", "三", "个", "字"]
    assert cut.doc.tolist() == [0, 0, 2, 2, 2]
    assert len(words(pa.array([], pa.string())).values) == 0
    assert len(words(pa.array(["", ""], pa.string())).values) == 0


def test_flags_come_from_re2_for_every_code_point_beyond_the_table() -> None:
    """Code points above the classified range have no flag: RE2 agrees on a sample of each
    plane (tags, variation selectors, private use, unassigned)."""
    high = [0x40000, 0x9FFFF, 0xE0001, 0xE0041, 0xE0100, 0xF0000, 0x10FFFD]
    chars = pa.array([chr(c) for c in high], pa.string())
    for pattern in (r"^\s$", f"^[{CJK_CLASS}]$", f"^{PUNCT_OR_SYMBOL}$", r"^\pL$"):
        assert not any(pc.match_substring_regex(chars, pattern).to_pylist()), pattern
    assert not _words.char_flags()[high].any()
