# ruff: noqa: RUF001  (CJK punctuation in literals is intended)
"""The shared measuring core: CJK-aware words and per-document measures on literal texts."""

import json
import math
import random
from itertools import islice

import pyarrow as pa
import pytest

from prepflow.operators.common import native
from prepflow.operators.text._stats import DocStats, byte_counts, compile_words, stopwords
from prepflow.operators.text._words import words as cut_words

TEXTS = [
    "the cat sat on the mat. the cat sat.",
    "你好世界",
    "x y z x y z w",
    "- a\n- b\nc...",
    "a\nb\na\na",
    None,
    "",
]


@pytest.fixture(scope="module")
def stats() -> DocStats:
    return DocStats(pa.array(TEXTS))


def test_words_split_punctuation_and_cjk_characters():
    words = cut_words(pa.array(["Hello, world! (see) don't 你好，世界。"])).values.to_pylist()
    assert words == [
        "Hello",
        ",",
        "world",
        "!",
        "(",
        "see",
        ")",
        "don't",
        "你",
        "好",
        "，",
        "世",
        "界",
        "。",
    ]


def test_word_counts_and_mean_length(stats):
    # doc 0: 11 tokens, 2 of them "."; words 3+3+3+2+3+3+3+3+3 = 26 characters
    assert stats.n_words.tolist() == [11, 4, 7, 6, 4, 0, 0]
    assert stats.word_count.tolist() == [9, 4, 7, 3, 4, 0, 0]
    assert stats.mean_word_length[0] == pytest.approx(26 / 9)
    assert math.isnan(stats.mean_word_length[1])  # CJK: not applicable
    assert math.isnan(stats.mean_word_length[5])  # no words
    assert stats.is_cjk.tolist() == [False, True, False, False, False, False, False]


def test_word_ratios(stats):
    assert stats.unique_word_ratio[0] == pytest.approx(5 / 9)  # the cat sat on mat
    assert stats.alpha_word_ratio[0] == pytest.approx(9 / 11)
    assert stats.alpha_word_ratio[3] == pytest.approx(3 / 6)  # "-" "-" "..." have no letter


def test_stop_words_use_the_list_of_the_script(stats):
    assert stats.stopword_count().tolist() == [1, 0, 0, 0, 0, 0, 0]  # "the" (Gopher list)
    zh = DocStats(pa.array(["我的书是在这里的", "the the of"]))
    assert zh.stopword_count().tolist() == [5, 2]  # 我 的 是 在 这 ; the of
    assert zh.stopword_count(["书", "THE"]).tolist() == [1, 1]


def test_line_measures(stats):
    assert stats.n_lines.tolist() == [1, 1, 1, 3, 4, 0, 0]
    assert stats.bullet_line_ratio[3] == pytest.approx(2 / 3)
    assert stats.ellipsis_line_ratio[3] == pytest.approx(1 / 3)
    assert stats.dup_line_frac[4] == pytest.approx(2 / 4)
    assert stats.dup_line_char_frac[4] == pytest.approx(2 / 7)  # two repeated "a" of 7 chars


@pytest.mark.usefixtures("cutter")
def test_ngram_repetition():
    stats = DocStats(pa.array(TEXTS))
    # doc 0 word chars: 28. "the cat"/"cat sat" occur twice (6 chars each) -> 12/28;
    # the second "the cat sat" covers 9 chars -> 9/28
    assert stats.top_ngram_char_frac(2)[0] == pytest.approx(12 / 28)
    assert stats.dup_ngram_char_frac(3)[0] == pytest.approx(9 / 28)
    # doc 2 "x y z x y z w": top 2-gram twice (2 chars) -> 4/7; repeated "x y z" -> 3/7
    assert stats.top_ngram_char_frac(2)[2] == pytest.approx(4 / 7)
    assert stats.dup_ngram_char_frac(3)[2] == pytest.approx(3 / 7)
    assert stats.dup_ngram_char_frac(4)[2] == 0
    # Chinese is repeated by characters: 好 吃 repeats
    zh = DocStats(pa.array(["好吃好吃好吃"]))
    assert zh.top_ngram_char_frac(2)[0] == pytest.approx(6 / 6)  # 好吃 x3 (好吃/吃好: 3 vs 2)


def _c_and_corpus_texts(shared_data, per_corpus: int) -> list[str]:
    """The first ``per_corpus`` texts of each corpus, for a test of a C pass (skipped without
    the C library)."""
    if native.library() is None:
        pytest.skip(native.build())
    return [
        json.loads(line)["text"]
        for path in sorted((shared_data / "corpora").glob("*.jsonl"))
        for line in islice(path.open(encoding="utf-8"), per_corpus)
    ]


def test_the_c_ngram_repetition_is_the_numpy_one(shared_data, monkeypatch):
    """Both n-gram measures for n = 1 to 12 (past the ten measured at once, so the table is
    remade), in C and by numpy's grouping: the same fractions on corpus documents and on random
    texts of few words, where n-grams repeat at every length, case variants and words that
    lower-case to another length included."""
    texts = _c_and_corpus_texts(shared_data, 300)
    rng = random.Random(5)
    pool = ["a", "b", "A", "the", "The", "THE", "中", "文", ".", ",", "İ", "i̇", "K", "k"]
    texts += [
        " ".join(rng.choices(pool[: rng.randint(2, len(pool))], k=rng.randint(0, 60)))
        for _ in range(3000)
    ]
    column = pa.array(texts)

    def measured(stats):
        tops = [stats.top_ngram_char_frac(n) for n in range(1, 13)]
        return tops + [stats.dup_ngram_char_frac(n) for n in range(1, 13)]

    in_c = measured(DocStats(column))
    monkeypatch.setattr(native, "library", lambda: None)
    for k, (got, expected) in enumerate(zip(in_c, measured(DocStats(column)), strict=True)):
        assert got.tolist() == expected.tolist(), ("top", "dup")[k // 12] + f" n={k % 12 + 1}"
    assert sum(float(m.sum()) for m in in_c) > 100


def test_sentences_count_cjk_full_stops():
    s = DocStats(pa.array(["One. Two! Three? no end", "一。二！三？", "v1.2 is out"]))
    assert s.sentences.tolist() == [3, 3, 0]


def test_compile_words_matches_whole_latin_words_and_cjk_substrings():
    pattern = compile_words(["bad", "a.b", "坏话"])
    s = DocStats(pa.array(["bad badge a.b axb", "这是坏话"]))
    assert s.count(pattern, ignore_case=True).tolist() == [2, 1]


@pytest.mark.usefixtures("cutter")
def test_byte_counts_on_sliced_and_empty_arrays():
    texts = pa.array(["a b", "", "你好 x", "1 2 3"])
    classes = [(32,), range(0xE3, 0xEA)]  # 你 好: lead bytes E4 E5
    assert byte_counts(texts, classes).tolist() == [[1, 0], [0, 0], [1, 2], [2, 0]]
    assert byte_counts(texts.slice(1), classes[:1]).tolist() == [[0], [1], [2]]
    assert byte_counts(pa.array(["", ""]), classes).tolist() == [[0, 0], [0, 0]]
    assert byte_counts(texts.slice(4), classes).shape == (0, 2)


@pytest.mark.usefixtures("cutter")
def test_byte_counts_on_every_corpus(shared_data):
    """Each class's count is the count of its byte values, on every corpus document, in C and
    in numpy."""
    texts = [
        json.loads(line)["text"]
        for path in sorted((shared_data / "corpora").glob("*.jsonl"))
        for line in islice(path.open(encoding="utf-8"), 300)
    ]
    classes = [(9, 10, 11, 12, 13, 32), range(0xE3, 0xEA), range(0x30, 0x3A), (0x23,)]
    counts = byte_counts(pa.array(texts, pa.string()), classes)
    for text, row in zip(texts, counts.tolist(), strict=True):
        data = text.encode()
        assert row == [sum(data.count(b) for b in values) for values in classes]


@pytest.mark.parametrize("custom", [None, ["The", "K", "ix", "ǆ", "σ", "书", "straße"]])
def test_stop_words_counted_as_every_word_lower_cased_would_count_them(shared_data, custom):
    """Only words as long as a stop word are looked up: the count must be what lower-casing
    every word and looking each up gives, on corpus documents and on words whose lower case
    is another letter (Kelvin sign, dotted I, titlecase, final sigma, sharp s)."""
    texts = [
        json.loads(line)["text"]
        for path in sorted((shared_data / "corpora").glob("*.jsonl"))
        for line in islice(path.open(encoding="utf-8"), 200)
    ]
    texts += ["\u212a THE İx ǅ Σ the of", "ẞTRASSE straße İX 书 的 是", "Ｔｈｅ the"]
    stats = DocStats(pa.array(texts, pa.string()))
    cut = cut_words(stats.text)
    lowered = pa.compute.utf8_lower(cut.values).to_pylist()
    lists = [{w.lower() for w in custom}] if custom else [stopwords("en"), stopwords("zh")]
    expected = [set() for _ in texts]
    for doc, word in zip(cut.doc.tolist(), lowered, strict=True):
        vocab = lists[0] if custom else lists[int(stats.is_cjk[doc])]
        if word in vocab:
            expected[doc].add(word)
    assert stats.stopword_count(custom).tolist() == [len(e) for e in expected]
    assert sum(map(len, expected)) > 100


def test_the_c_line_marks_are_the_regex_measures(shared_data, monkeypatch):
    """Non-blank lines, bullet lines, lines ending in an ellipsis and ellipses, counted in one C
    pass: the regexes' measures on every corpus document and on random texts of the characters
    where the rules meet (RE2's \\s leaves out the vertical tab)."""
    texts = _c_and_corpus_texts(shared_data, 500)
    rng = random.Random(11)
    pool = ["\n", " ", "\t", "\r", "\f", "\v", ".", "..", "…", "•", "-", "*", "◦", "a", "é", "中",
            "\u2028", "\xa0"]  # fmt: skip
    texts += ["".join(rng.choices(pool, k=rng.randint(0, 15))) for _ in range(20000)]
    column = pa.array(texts, pa.string())
    measures = ("n_lines", "bullet_line_ratio", "ellipsis_line_ratio", "ellipsis_word_ratio")

    def measured(stats):
        return [getattr(stats, m) for m in measures[:3]] + [stats.ellipsis_word_ratio()]

    in_c = measured(DocStats(column))
    monkeypatch.setattr(native, "library", lambda: None)
    for name, got, expected in zip(measures, in_c, measured(DocStats(column)), strict=True):
        assert got.tolist() == expected.tolist(), name
