# ruff: noqa: RUF001  (CJK punctuation in literals is intended)
"""The shared measuring core: CJK-aware words and per-document measures on literal texts."""

import math

import pyarrow as pa
import pytest

from prepflow.operators.text._stats import DocStats, byte_count, compile_words
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


def test_ngram_repetition(stats):
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


def test_sentences_count_cjk_full_stops():
    s = DocStats(pa.array(["One. Two! Three? no end", "一。二！三？", "v1.2 is out"]))
    assert s.sentences.tolist() == [3, 3, 0]


def test_compile_words_matches_whole_latin_words_and_cjk_substrings():
    pattern = compile_words(["bad", "a.b", "坏话"])
    s = DocStats(pa.array(["bad badge a.b axb", "这是坏话"]))
    assert s.count(pattern, ignore_case=True).tolist() == [2, 1]


def test_byte_count_on_sliced_and_empty_arrays():
    texts = pa.array(["a b", "", "你好 x", "1 2 3"])
    assert byte_count(texts, (32,)).tolist() == [1, 0, 1, 2]
    assert byte_count(texts.slice(1), (32,)).tolist() == [0, 1, 2]
    assert byte_count(texts, range(0xE3, 0xEA)).tolist() == [0, 0, 2, 0]  # 你 好: lead bytes E4 E5
    assert byte_count(pa.array(["", ""]), (32,)).tolist() == [0, 0]
