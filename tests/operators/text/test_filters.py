"""Single-rule filters: which rows are kept, and the exact reason of each dropped row."""

import pytest

from prepflow.core.errors import ConfigError
from prepflow.operators.text import filters as F

CASES = [
    (
        F.WordCountFilter(),
        ["one two three", " ".join(["word"] * 25), "中文" * 10],
        [1, 2],
        ["min_words: word_count=3 < 20"],
    ),
    (
        F.CharCountFilter(),
        ["short text", "x" * 100, "中" * 99],
        [1],
        ["min_chars: chars=9 < 100", "min_chars: chars=99 < 100"],
    ),
    (
        F.MeanWordLengthFilter(),
        ["a b c d", "normal words here", "supercalifragilistic words", "一二"],
        [1, 3],
        [
            "min_length: mean_word_length=1 < 3",
            "max_length: mean_word_length=12.5 > 10",
        ],
    ),
    (
        F.SymbolWordRatioFilter(),
        ["# # # a b", "wait... what... a b c d e"],
        [1],
        ["max_ratio: symbol_word_ratio=0.6 > 0.4"],
    ),
    (
        F.BulletLineFilter(),
        ["- a\n- b", "• a\nb"],
        [1],
        ["max_ratio: bullet_line_ratio=1 > 0.9"],
    ),
    (
        F.EllipsisLineFilter(),
        ["a...\nb\nc", "a\nb\nc\nd…"],
        [1],
        ["max_ratio: ellipsis_line_ratio=0.3333 > 0.3"],
    ),
    (
        F.LinePunctuationFilter(),
        ["a\nb\nc\nd\ne\nf\ng\nh\ni.", "a\nb\nc\nd\ne\nf\ng\ni。"],
        [1],
        ["min_ratio: line_punct_ratio=0.1111 < 0.12"],
    ),
    (
        F.StopwordFilter(),
        ["the cat and the dog", "cat dog", "我的书", "书本"],
        [0, 2],
        ["min_stop_words: stop_words=0 < 2", "min_stop_words: stop_words=0 < 2"],
    ),
    (
        F.SentenceCountFilter(),
        ["One. Two. Three.", "One. Two.", "一。二。三。"],
        [0, 2],
        ["min_sentences: sentences=2 < 3"],
    ),
    (
        F.LoremIpsumFilter(),
        ["LOREM IPSUM dolor", "lorem"],
        [1],
        ["max_ratio: lorem_ipsum_ratio=0.05882 > 3e-08"],
    ),
    (
        F.CurlyBracketFilter(),
        ["f() { return; }", "a {b} " + "x" * 100],
        [1],
        ["max_ratio: curly_bracket_ratio=0.1333 > 0.025"],
    ),
    (
        F.JavascriptLineFilter(),
        ["JavaScript\njavascript\nJAVASCRIPT\njavascript", "javascript\n" * 3],
        [1],
        ["max_lines: javascript_lines=4 > 3"],
    ),
    (
        F.UppercaseRatioFilter(),
        ["BUY NOW cheap pills", "This is a normal sentence with One capital"],
        [1],
        ["max_ratio: all_caps_word_ratio=0.5 > 0.2"],
    ),
    (
        F.DigitRatioFilter(),
        ["1234 abc", "in 2024 it was a good and quiet year"],
        [1],
        ["max_ratio: digit_ratio=0.5 > 0.15"],
    ),
    (
        F.UniqueWordRatioFilter(),
        [" ".join(["spam"] * 11), "a b c"],
        [1],
        ["min_ratio: unique_word_ratio=0.09091 < 0.1"],
    ),
    (
        F.BlocklistFilter(words=["darn", "坏蛋"]),
        ["Darn it", "darnation", "你这个坏蛋"],
        [1],
        ["max_hits: blocklist_hits=1 > 0", "max_hits: blocklist_hits=1 > 0"],
    ),
]


@pytest.mark.parametrize(
    ("op", "texts", "kept", "reasons"), CASES, ids=lambda c: getattr(c, "name", "")
)
def test_filter(run, op, texts, kept, reasons):
    result = run(op, texts)
    assert result.kept.column("_id").to_pylist() == kept
    dropped = [] if result.dropped is None else result.dropped.column("_reason").to_pylist()
    assert dropped == reasons
    assert result.kept.num_rows + result.n_dropped == len(texts)


def test_disabled_rule_keeps_everything(run):
    assert run(F.WordCountFilter(min_words=None), ["one"]).n_dropped == 0


def test_blocklist_from_file(run, tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("# comment\nfoo bar\n", encoding="utf-8")
    result = run(F.BlocklistFilter(path=str(path), max_hits=1), ["foo bar and FOO BAR", "foo bar"])
    assert result.dropped.column("_reason").to_pylist() == ["max_hits: blocklist_hits=2 > 1"]


def test_blocklist_without_a_list_is_a_config_error(run):
    op = F.BlocklistFilter()
    assert op.check() == ["BlocklistFilter: give 'words' or 'path' (no blocklist is bundled)"]
    with pytest.raises(ConfigError, match="no blocklist is bundled"):
        run(op, ["text"])
