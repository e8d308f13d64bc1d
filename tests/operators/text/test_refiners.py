# ruff: noqa: RUF001  (CJK punctuation in literals is intended)
"""Refiners rewrite the text column: exact outputs on English and Chinese literals."""

import json
import os
import random
import subprocess
import sys
from itertools import islice

import ftfy
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from prepflow.operators.common import native
from prepflow.operators.text import _nfc, boilerplate, refiners
from prepflow.operators.text._badness import PYTHON_SPACE, badness_re2
from prepflow.operators.text.boilerplate import BoilerplateLineRemover
from prepflow.operators.text.refiners import (
    EmojiRemover,
    HtmlRemover,
    UnicodeFixer,
    UrlRemover,
    WhitespaceNormalizer,
)


def texts(result):
    return result.kept.column("text").to_pylist()


def test_html_remover(run):
    out = run(
        HtmlRemover(),
        [
            "<p>Hello <b>world</b> &amp; caf&eacute;</p><script>var x = 1;</script><!-- c -->"
            "a < b > c<br/>end",
            "<div>你好&nbsp;世界</div>",
            None,
        ],
    )
    assert texts(out) == ["\nHello world & café\na < b > c\nend", "\n你好\xa0世界\n", None]
    assert out.kept.column("_id").to_pylist() == [0, 1, 2]


def test_html_remover_can_keep_entities(run):
    assert texts(run(HtmlRemover(entities=False), ["<i>a &amp; b</i>"])) == ["a &amp; b"]


def test_url_remover_keeps_following_punctuation(run):
    out = run(
        UrlRemover(),
        [
            "See https://example.com/a?b=1. Or www.test.org, or ftp://x.y/z)",
            "访问 https://例子.中国/路径 了解",
        ],
    )
    assert texts(out) == ["See . Or , or )", "访问  了解"]


def test_emoji_remover_takes_modifiers_and_joiners(run):
    out = run(EmojiRemover(), ["Great job 👍🏽! Family 👨‍👩‍👧 ❤️ ok ⭐", "开心😀，“好”"])
    assert texts(out) == ["Great job ! Family   ok ", "开心，“好”"]


def test_whitespace_normalizer_keeps_paragraphs(run, cutter):
    out = run(
        WhitespaceNormalizer(),
        ["  Hello\u00a0\u00a0world \t!\r\n\r\n\r\n\r\nNext\u200bline  \n", "中文\u3000空格，标点"],
    )
    assert texts(out) == ["Hello world !\n\nNextline", "中文 空格，标点"]
    assert texts(run(WhitespaceNormalizer(unicode_form="NFKC"), ["标点，ｆｕｌｌ"])) == [
        "标点,full"
    ]


def test_unicode_fixer_repairs_mojibake_and_keeps_cjk_punctuation(run):
    out = run(
        UnicodeFixer(),
        ["cafÃ© â€œquotedâ€\x9d", "ﬁne\r\nline", "a\x1b[31mred", "中文，“引号”。", "plain ascii"],
    )
    assert texts(out) == ["café “quoted”", "fine\nline", "ared", "中文，“引号”。", "plain ascii"]


def test_unicode_fixer_equals_ftfy_on_real_text(run, shared_data):
    """Only texts ftfy could change are sent to it: the result must be ftfy's, text by text."""
    docs = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in islice(f, 150)]
    docs += ["Ã©tÃ©", "x &lt; y", "\u2028sep", "\ufeffbom"]
    config = ftfy.TextFixerConfig(uncurl_quotes=False, fix_character_width=False, explain=False)
    assert texts(run(UnicodeFixer(), docs)) == [ftfy.fix_text(d, config) for d in docs]


_FTFY_CONFIG = ftfy.TextFixerConfig(uncurl_quotes=False, fix_character_width=False, explain=False)


def test_unicode_fixer_runs_ftfy_on_lines_as_ftfy_does(run):
    """ftfy runs only on the lines holding a character it acts on: the text must still be what
    ftfy makes of it whole, with HTML unescaping off from the first line holding "<"."""
    lines = [
        "clean line", "cafÃ© line", "x &lt; y &amp; z", "<b>tag</b>", "after &lt; tag",
        "ﬁne", "\r", "", "中文，“引号”。", "Ã©tÃ©\x1b[31m", "\u2028", "plain",
    ]  # fmt: skip
    rng = random.Random(3)
    docs = ["", "\n", "a\n\n", "x &lt; y\n<p>\nz &gt; w", "<p>\nx &lt; y", "cafÃ©"]
    for _ in range(300):
        picked = [rng.choice(lines) for _ in range(rng.randint(1, 8))]
        docs.append(rng.choice(["\n", "\r\n"]).join(picked) + rng.choice(["", "\n"]))
    assert texts(run(UnicodeFixer(), docs)) == [ftfy.fix_text(d, _FTFY_CONFIG) for d in docs]


def test_unicode_fixer_cuts_long_lines_where_ftfy_does():
    """A line longer than ftfy's ``max_decode_length`` is fixed in pieces of that length."""
    config = _FTFY_CONFIG._replace(max_decode_length=7)
    docs = ["cafÃ© cafÃ© cafÃ©\nshort\n" + "Ã©" * 20, "x" * 30 + "&lt;" + "y" * 9]
    pattern = f"{refiners._FTFY_CHARS}|{badness_re2()}"
    fixed = refiners._fix_text(pa.array(docs), pattern=pattern, options=config._asdict())
    assert fixed.to_pylist() == [ftfy.fix_text(d, config) for d in docs]


@pytest.mark.slow
def test_unicode_fixer_equals_ftfy_on_every_corpus_document_it_sends(run, shared_data):
    """Every corpus document holding a character ftfy acts on: ftfy's result, line by line."""
    docs = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in f]
    pattern = f"{refiners._FTFY_CHARS}|{badness_re2()}"
    sent = pa.array(docs).filter(pc.match_substring_regex(pa.array(docs), pattern)).to_pylist()
    assert len(sent) > 100
    assert texts(run(UnicodeFixer(), sent)) == [ftfy.fix_text(d, _FTFY_CONFIG) for d in sent]


def test_c4_word_counts_are_the_regex_counts(shared_data):
    """The C count of C4's words per line is RE2's count of ``[CJK]|[^\\s CJK]+``: on every
    line of 2,000 documents of each corpus and on random lines of the characters where the classes meet (RE2's
    \\s leaves out vertical tab and no-break space)."""
    if native.library() is None:
        pytest.skip(native.build())
    lines = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            lines += [ln for line in islice(f, 2000) for ln in json.loads(line)["text"].split("\n")]
    rng = random.Random(5)
    pool = ["a", "Z", "é", "e\u0301", "1", ".", "-", " ", "\t", "\r", "\f", "\v", "\xa0",
            "\u3000", "中", "ひ", "カ", "ー", "한", "😀", "\u200b", "\x00"]  # fmt: skip
    lines += ["".join(rng.choices(pool, k=rng.randint(0, 12))) for _ in range(10000)]
    column = pa.array(lines, pa.string())
    expected = pc.count_substring_regex(column, boilerplate._WORD).to_pylist()
    assert boilerplate._word_counts(column).tolist() == expected
    assert boilerplate._word_counts(column.slice(7, 100)).tolist() == expected[7:107]


def test_boilerplate_line_remover_applies_c4_line_rules(run, cutter):
    page = "\n".join(
        [
            "Title",
            "This is a proper sentence here.",
            "Please enable JavaScript to view this site.",
            "We use cookies on this site, see our privacy policy.",
            "Short one.",
            "It was cited [1] and edited [edit].",
            "这是一个完整的中文句子。",
            "导航",
            "A word " + "x" * 1001 + " is too long.",
        ]
    )
    assert texts(run(BoilerplateLineRemover(), [page, None])) == [
        "This is a proper sentence here.\nIt was cited  and edited .\n这是一个完整的中文句子。",
        None,
    ]


def test_boilerplate_line_remover_without_terminal_punctuation(run, cutter):
    out = run(
        BoilerplateLineRemover(require_terminal_punct=False),
        ["Title line with four words\nok\n\n中文标题"],
    )
    assert texts(out) == ["Title line with four words\n中文标题"]


def test_texts_with_nothing_to_repair_never_import_ftfy(tmp_path):
    """ftfy's detector, as RE2, is kept in the cache by the first process; a later one whose
    texts need no repair never imports ftfy (70 ms holding the GIL), one that repairs does."""
    script = (
        "import sys, pyarrow as pa\n"
        "from prepflow.operators.text.refiners import UnicodeFixer\n"
        "print(UnicodeFixer().rewrite(pa.array(sys.argv[1:])).to_pylist(), 'ftfy' in sys.modules)"
    )
    env = {**os.environ, "PREPFLOW_CACHE_DIR": str(tmp_path)}

    def fix(*docs):
        done = subprocess.run([sys.executable, "-c", script, *docs], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    assert fix("plain text") == "['plain text'] True"  # the first builds the pattern with ftfy
    assert list((tmp_path / "ftfy").glob("badness-re2-*.txt"))
    assert fix("plain text", "中文") == "['plain text', '中文'] False"
    assert fix("cafÃ©") == "['café'] True"


def test_badness_re2_flags_exactly_what_ftfy_flags(shared_data):
    """The RE2 translation of ftfy's detector agrees with ``is_bad`` text by text."""
    from ftfy.badness import is_bad

    docs = [
        "cafÃ© â€œquotedâ€\x9d",
        "Ã©tÃ©",
        "РџСЂРёРІРµС‚",
        "ä¸­æ–‡",
        "â€™",
        "Â\xa0x",
        "naïve café",
    ]
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in islice(f, 300)]
    flagged = pc.match_substring_regex(pa.array(docs), badness_re2()).to_pylist()
    assert flagged == [bool(is_bad(d)) for d in docs]
    assert sum(flagged[:6]) == 6 and not flagged[6]


def test_python_space_class_is_str_isspace():
    spaces = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    others = "".join(chr(c) for c in range(0x3100) if not chr(c).isspace())
    pattern = f"^[{PYTHON_SPACE}]+$"
    assert pc.match_substring_regex(pa.array([spaces]), pattern).to_pylist() == [True]
    assert not any(pc.match_substring_regex(pa.array(list(others)), pattern).to_pylist())


def test_whitespace_normalizer_rewrites_exactly_what_all_its_passes_would(run, shared_data, cutter):
    """Only texts with something to tidy (and only non-ASCII ones to normalise) go through the
    kernels (the C tidy, or its RE2 twin): the result must be that of every pass over every
    text."""
    docs = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in islice(f, 400)]
    rng = random.Random(5)
    pieces = [*" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000\u200b\ufeff", "ab", "中", "e\u0301", "."]
    docs += ["".join(rng.choice(pieces) for _ in range(rng.randrange(12))) for _ in range(5_000)]
    every = pc.utf8_normalize(pa.array(docs, pa.string()), "NFC")
    for pattern, replacement in (
        (r"\r\n?", "\n"),
        (r"[\t\x{000B}\x{000C}\x{00A0}\x{1680}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}]", " "),
        (r"[\x{200B}\x{FEFF}]", ""),
        (r"  +", " "),
        (r" \n", "\n"),
        (r"\n{3,}", "\n\n"),
    ):
        every = pc.replace_substring_regex(every, pattern, replacement)
    assert texts(run(WhitespaceNormalizer(), docs)) == pc.utf8_trim_whitespace(every).to_pylist()


def test_the_c_tidy_is_the_re2_tidy_on_every_corpus_document(shared_data):
    lib = native.library()
    if lib is None:
        pytest.skip(native.build())
    docs = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in f]
    rng = random.Random(8)
    pieces = [*" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f"]
    pieces += ["\u3000", "\u200b", "\ufeff", "\r\n", "ab", "中", "é", "."]
    docs += ["".join(rng.choice(pieces) for _ in range(rng.randrange(24))) for _ in range(20_000)]
    array = pa.array([*docs, None], pa.string())
    for texts_ in (array, array.slice(7, 5_000)):
        want = refiners._tidy_re2(texts_)
        got = refiners._tidy(texts_)
        if not got.equals(want):
            rows = zip(texts_.to_pylist(), got.to_pylist(), want.to_pylist(), strict=True)
            for doc, have, expected in rows:
                assert have == expected, f"tidy of {str(doc)[:200]!r}"


def test_nfc_skips_only_texts_nfc_leaves_as_they_are(shared_data):
    """Texts without a character NFC can change or move skip Arrow's NFC: the result is Arrow's
    NFC of every text, on every corpus document and on random texts of composing pairs, Hangul
    jamo, vowel signs of class 0, reordered marks, singletons, and characters newer than this
    Python's Unicode database (Gurung Khema, Unicode 16, composes)."""
    docs = []
    for path in sorted((shared_data / "corpora").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in f]
    pieces = list(
        "aeoAO<=>中é한ㄱ가\u1100\u1161\u11a8\u0301\u0316\u0327\u0338\u212b\u2126\u00c5\u030a"
    )
    pieces += list("\u0b47\u0b3e\u0bc6\u0bbe\u09c7\u09be\u1025\u102e\u0f71\u0f72\u1e0b\u0323\u0344")
    pieces += ["\U0001d15e", "\U0001d165", "\uff21", "\U00016121", "\U0001611e", "\U0001e4ef"]
    rng = random.Random(4)
    docs += ["".join(rng.choice(pieces) for _ in range(rng.randrange(12))) for _ in range(50_000)]
    array = pa.array([*docs, None], pa.string())
    assert refiners.normalize(array, "NFC").equals(pc.utf8_normalize(array, "NFC"))
    assert refiners.normalize(array, "NFKC").equals(pc.utf8_normalize(array, "NFKC"))


def test_the_kept_nfc_pattern_is_what_this_pythons_unicode_database_says():
    """The pattern read back from the cache is the one made from Unicode's data here."""
    _nfc.nfc_unstable.cache_clear()
    kept = _nfc.nfc_unstable()
    assert kept == _nfc._pattern(_nfc._ask_unicodedata())
    assert kept.startswith("[\\x{") and kept.endswith("]")
