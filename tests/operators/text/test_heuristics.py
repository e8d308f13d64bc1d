# ruff: noqa: RUF001  (CJK punctuation in literals is intended)
"""Gopher, C4 and FineWeb rule families on literal English and Chinese documents."""

import pyarrow as pa

from prepflow.operators.text.heuristics import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

SENTENCE = "The quick brown fox jumps over the lazy dog and runs to the river with a friend."
EN_GOOD = (
    "Rivers shape the land over long periods of time. Water carries sand and small stones "
    "from the mountains to the sea, and the moving current slowly cuts deep valleys into the "
    "rock. Farmers have settled near rivers for thousands of years because the soil there is "
    "rich. Cities grew along their banks, and boats moved goods between towns that had no roads."
)
ZH_GOOD = (
    "河流在很长的时间里塑造了大地。水把沙子和小石头从山上带到海里，流动的水慢慢地在岩石中切出"
    "深深的山谷。因为那里的土地肥沃，农民几千年来一直住在河边。城市沿着河岸发展起来，船只在没有"
    "道路的城镇之间运送货物。"
)


def run(op, texts):
    table = pa.table({"_id": pa.array(range(len(texts)), pa.int64()), "text": texts})
    return op.bind({}).run_batch(table)


def reasons(result):
    return [] if result.dropped is None else result.dropped.column("_reason").to_pylist()


def test_gopher_quality_keeps_running_text_in_english_and_chinese():
    r = run(GopherQualityFilter(), [EN_GOOD, ZH_GOOD])
    assert r.kept.column("_id").to_pylist() == [0, 1]


def test_gopher_quality_reasons_name_rule_and_value():
    texts = [
        "Too short to keep.",
        " ".join(["Pneumonoultramicroscopic silicovolcanoconiosis"] * 30 + ["the", "of"]),
        " ".join([SENTENCE] * 4) + " #" * 10,
        "\n".join(["- " + SENTENCE] * 4),
        " ".join(["cat dog bird fish"] * 15),
        "我们的城市。",
    ]
    r = run(GopherQualityFilter(), texts)
    assert r.kept.num_rows == 0
    assert reasons(r) == [
        "min_doc_words: word_count=4 < 50",
        "max_avg_word_length: mean_word_length=21.85 > 10",  # (45 * 30 + 5) / 62
        "max_symbol_word_ratio: hash_word_ratio=0.122 > 0.1",  # 10 '#' in 82 tokens
        "max_bullet_lines_ratio: bullet_line_ratio=1 > 0.9",
        "min_stop_words: stop_words=0 < 2",
        "min_doc_words: word_count=5 < 50",  # 我 们 的 城 市
    ]


def test_gopher_quality_rules_can_be_disabled():
    r = run(GopherQualityFilter(min_doc_words=None, min_stop_words=None), ["Too short to keep."])
    assert r.n_dropped == 0


def test_gopher_repetition_flags_repeated_lines_and_ngrams():
    repeated_lines = "\n".join([SENTENCE, SENTENCE, SENTENCE, "Another line here."])
    loop = " ".join(["buy cheap pills now"] * 10)
    zh_loop = "买便宜的药" * 20
    r = run(GopherRepetitionFilter(), [EN_GOOD, repeated_lines, loop, zh_loop, ZH_GOOD])
    assert reasons(r) == [
        "dup_line_frac: dup_line_frac=0.5 > 0.3",  # 2 of 4 lines repeat
        # "cheap pills" x10 (10 chars) of 160 word characters, longest of the most frequent
        "top_ngram_char_frac[2]: top_2gram_char_frac=0.625 > 0.2",
        "top_ngram_char_frac[2]: top_2gram_char_frac=0.4 > 0.2",  # 20 x 2 of 100 characters
    ]
    assert r.kept.column("_id").to_pylist() == [0, 4]


def test_c4_page_rules():
    texts = [
        "One. Two. Three. Four. Five.",
        "One. Two. Three. Four.",
        "Lorem Ipsum dolor. One. Two. Three. Four. Five.",
        "function f() { return 1; } One. Two. Three. Four. Five.",
        "一。二。三。四。五。",
    ]
    r = run(C4QualityFilter(), texts)
    assert r.kept.column("_id").to_pylist() == [0, 4]
    assert reasons(r) == [
        "min_sentences: sentences=4 < 5",
        "max_lorem_ipsum: lorem_ipsum=1 > 0",
        "max_curly_brackets: curly_brackets=1 > 0",
    ]


def test_fineweb_rules():
    menu = "\n".join(["Home", "About us", "Contact", "Shop"])
    short = "\n".join(["Yes.", "No.", "Maybe.", SENTENCE])
    dup = "\n".join([SENTENCE, SENTENCE, "A different sentence that is long enough."])
    zh_short = "好。\n对。\n是的。\n这是一个比较长的句子，有十多个字。"
    r = run(FineWebQualityFilter(), [SENTENCE, menu, short, dup, ZH_GOOD, zh_short])
    assert r.kept.column("_id").to_pylist() == [0, 4]
    assert reasons(r) == [
        "line_punct_thr: line_punct_ratio=0 < 0.12",
        "short_line_thr: short_line_ratio=0.75 > 0.67",
        "char_duplicates_ratio: dup_line_char_frac=0.3941 > 0.01",  # 80 of 203 characters
        "short_line_thr: short_line_ratio=0.75 > 0.67",  # CJK lines of <= 10 characters are short
    ]


def test_check_reports_inverted_bounds():
    assert GopherQualityFilter(min_doc_words=10, max_doc_words=5).check() == [
        "GopherQualityFilter: minimum word_count=10 exceeds max_doc_words=5"
    ]
