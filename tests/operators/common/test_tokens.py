"""The numpy tokenizer of the dedup and decontamination filters against its definition: RE2
spacing out the characters of scripts without spaces, then splitting on everything that is not a
letter, digit, mark or ``_``; on every document of the shared corpora and on random texts built
from the characters where the rules meet."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from prepflow.operators.common import ngrams
from prepflow.operators.common.ngrams import _SPACELESS, normalise, tokens
from tests.conftest import shared_data_dir

CORPORA = shared_data_dir() / "corpora"
#: every test runs with the C cutters and with the numpy ones
pytestmark = pytest.mark.usefixtures("cutter")


def regex_tokens(texts: pa.Array, *, split_spaceless: bool) -> pa.ListArray:
    s = pc.fill_null(normalise(texts, nfkc=True, lowercase=True), "")
    if split_spaceless:
        s = pc.replace_substring_regex(s, f"({_SPACELESS})", r" \1 ")
    lists = pc.split_pattern_regex(s, r"[^\p{L}\p{N}\p{M}_]+")
    flat = pc.list_flatten(lists)
    nonempty = pc.greater(pc.binary_length(flat), 0)  # separators at either end leave ""
    counts = np.bincount(
        pc.list_parent_indices(lists).filter(nonempty).to_numpy(), minlength=len(texts)
    )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(nonempty))


def assert_same_tokens(texts: list[str | None]) -> None:
    array = pa.array(texts, pa.string())
    for split in (True, False):
        got = tokens(array, nfkc=True, lowercase=True, split_spaceless=split)
        want = regex_tokens(array, split_spaceless=split)
        if got.equals(want):
            continue
        for text, have, expected in zip(texts, got.to_pylist(), want.to_pylist(), strict=True):
            assert have == expected, f"tokens of {text[:200]!r} (split_spaceless={split})"
        raise AssertionError(f"the same tokens, in other arrays: {got.type} {want.type}")


@pytest.mark.parametrize("corpus", sorted(p.name for p in CORPORA.glob("*.jsonl")))
def test_every_document_of_the_corpora_tokenizes_as_the_regexes_do(
    corpus: str, shared_data: Path
) -> None:
    with (shared_data / "corpora" / corpus).open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    assert_same_tokens(texts)


# letters, digits and marks of several scripts (Han, kana, Thai with its vowel marks and digits,
# Khmer), separators of every kind, "_", a Thai currency sign (in a spaceless script, not a token
# character), combining marks after a spaceless character, and characters beyond the BMP
# (a variation selector of plane 14 is a mark; a tag character is not)
PIECES = list(" \t\n.,!?-_'\"()") + list("aZé1٣ß") + list("中文の日カ") + list("ไทยกิ๑฿")
PIECES += list("ខ្មែរ")
PIECES += ["\u0301", "\u200b", "\U0001f600", "\U00020000", "\U000e0100", "\U000e0041", "\U000f0000"]
PIECES += list("ｶ①Ⅻ")


def test_random_texts_tokenize_as_the_regexes_do() -> None:
    rng = random.Random(11)
    texts: list[str | None] = [None, "", " ", "...", "a", "中", "a中b", "_x_", "ก\u0301"]
    texts += [
        "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 24))) for _ in range(20_000)
    ]
    assert_same_tokens(texts)


def test_a_batch_cut_in_several_chunks_is_the_batch_cut_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(5)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 60))) for _ in range(3_000)]
    array = pa.array(texts, pa.string())
    whole = tokens(array, nfkc=True, lowercase=True, split_spaceless=True)
    monkeypatch.setattr(ngrams, "CHUNK_BYTES", 200)
    assert tokens(array, nfkc=True, lowercase=True, split_spaceless=True).equals(whole)


def test_sliced_inputs_keep_their_rows() -> None:
    array = pa.array(["skip me", "Two words", None, "三个字"], pa.string())
    got = tokens(array.slice(1), nfkc=True, lowercase=True, split_spaceless=True)
    assert got.to_pylist() == [["two", "words"], [], ["三", "个", "字"]]


def test_no_code_point_beyond_the_classified_planes_is_a_token_character() -> None:
    """RE2 agrees on a sample of every plane left out of the table (unassigned planes, tags,
    private use), and the table holds no flag there."""
    high = [0x40000, 0x9FFFF, 0xDFFFF, 0xE0001, 0xE0041, 0xE1000, 0xF0000, 0x10FFFD]
    chars = pa.array([chr(c) for c in high], pa.string())
    assert not any(pc.match_substring_regex(chars, r"^[\p{L}\p{N}\p{M}_]$").to_pylist())
    assert not ngrams._token_classes()[high].any()
