"""N-gram decontamination against benchmark files written here, on real documents.

Expected drops come from a plain-Python oracle: the documents' and items' ``\\w+`` words
(NFKC-lowercased, each Han character a word), and contiguous word-sequence matching.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError, InputError
from prepflow.core.operator import ID, REASON
from prepflow.operators.text.decontaminate import NgramDecontaminate
from prepflow.testing import FakeContext

_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_WORD = re.compile(rf"[{_HAN}]|[^\W{_HAN}]+")


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def contains(doc: list[str], item: list[str], n: int) -> bool:
    """Whether ``doc`` shares an n-gram with ``item`` (all of ``item`` when it is shorter)."""
    k = min(n, len(item))
    grams = {tuple(item[i : i + k]) for i in range(len(item) - k + 1)}
    return any(tuple(doc[i : i + k]) in grams for i in range(len(doc) - k + 1))


def load(shared_data: Path, name: str) -> list[str]:
    with open(shared_data / "corpora" / name, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def run(op: NgramDecontaminate, texts: list[str]) -> dict[int, str]:
    """Set ``op`` up as the engine does (the benchmark comes through the context's side-input
    reader) and run it over ``texts``."""
    op.setup(FakeContext())
    table = pa.table({ID: pa.array(range(len(texts)), pa.int64()), "text": texts})
    result = op.run_batch(table)
    assert result.kept.num_rows + result.n_dropped == len(texts)
    if result.dropped is None:
        return {}
    return dict(
        zip(result.dropped[ID].to_pylist(), result.dropped[REASON].to_pylist(), strict=True)
    )


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), "utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> list[str]:
    return (
        load(shared_data, "kjv_bible_chapters_en.jsonl")[:60]
        + load(shared_data, "python_docs_en_paragraphs.jsonl")[:400]
    )


def test_drops_documents_sharing_an_ngram_with_test_items(corpus, tmp_path):
    leaked = corpus[100]  # a Python-docs paragraph, quoted re-cased and re-punctuated
    quote = " ".join(words(leaked)[2:22]).upper() + "?!"
    items = [
        {"question": "What is the boiling point of water at sea level, in degrees Celsius?"},
        {"question": quote},
        {"question": "In the beginning God created the heaven and the earth."},  # 10 words
        {"question": "And God said"},  # too short to count
        {"answer": 42, "question": "The mitochondria is the powerhouse of the cell, they say."},
    ]
    bench = write_jsonl(tmp_path / "test.jsonl", items)
    op = NgramDecontaminate(benchmark=str(bench), column="question")

    reasons = run(op, corpus)

    item_words = [words(i["question"]) for i in items]
    expected = {}
    for d, doc in enumerate(corpus):
        hits = [k for k, w in enumerate(item_words) if len(w) >= 8 and contains(words(doc), w, 13)]
        if hits:
            expected[d] = hits[0] + 1  # the item's position in the benchmark
    assert 100 in expected and expected[100] == 2
    assert 0 in expected and expected[0] == 3  # Genesis 1 opens with the 10-word item
    assert sorted(reasons) == sorted(expected)
    for d, line in expected.items():
        n = min(13, len(item_words[line - 1]))
        assert reasons[d].startswith(
            f'shares {n} tokens with benchmark item {line} of test.jsonl "'
        )
    assert reasons[0] == (
        'shares 10 tokens with benchmark item 3 of test.jsonl "In the beginning God created the '
        'heaven and the earth."'
    )


def test_txt_benchmark_and_min_item_tokens(corpus, tmp_path):
    bench = tmp_path / "items.txt"
    bench.write_text(
        "\nIn the beginning God created the heaven and the earth.\n"
        "A question of thirteen words or more that no document here contains at all.\n",
        "utf-8",
    )
    assert list(run(NgramDecontaminate(benchmark=str(bench)), corpus)) == [0]
    # with min_item_tokens above its 10 words, the Genesis item no longer counts
    assert run(NgramDecontaminate(benchmark=str(bench), min_item_tokens=11), corpus) == {}


def test_chinese_items_match_by_character(shared_data: Path, tmp_path):
    poems = load(shared_data, "fortunes_zh.jsonl")[:200]
    line = poems[10].split("\n")[2]  # one line of a poem: no spaces, matched character by character
    assert len(words(line)) >= 8
    bench = write_jsonl(tmp_path / "zh.jsonl", [{"text": line}])

    reasons = run(NgramDecontaminate(benchmark=str(bench)), poems)

    expected = [d for d, p in enumerate(poems) if contains(words(p), words(line), 13)]
    assert 10 in expected
    assert sorted(reasons) == expected


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ('{"question": "fine"}\nnot json\n', InputError, r"bad\.jsonl:2: "),
        (
            '{"other": "x"}\n',
            ConfigError,
            r"bad\.jsonl has no column 'question' \(columns: other\)",
        ),
        ('{"question": ["a", "b"]}\n', ConfigError, r"column 'question' must hold strings"),
    ],
)
def test_bad_benchmark_lines_name_file_and_line(tmp_path, content, error, message):
    bench = tmp_path / "bad.jsonl"
    bench.write_text(content, "utf-8")
    op = NgramDecontaminate(benchmark=str(bench), column="question")
    with pytest.raises(error, match=message):
        run(op, ["some text"])


def test_benchmark_problems_found_at_compile_time(tmp_path):
    assert NgramDecontaminate(benchmark=str(tmp_path / "missing.jsonl")).check() == [
        f"NgramDecontaminate: parameter 'benchmark': no file {tmp_path / 'missing.jsonl'}"
    ]
    csv = tmp_path / "items.csv"  # any format prepflow reads is a benchmark
    csv.write_text("text\nthe quick brown fox jumps over the lazy dog again and again\n", "utf-8")
    assert NgramDecontaminate(benchmark=str(csv)).check() == []
    assert run(
        NgramDecontaminate(benchmark=str(csv), n=8), ["the quick brown fox jumps over the lazy dog"]
    )
    short = tmp_path / "short.txt"
    short.write_text("two words\n", "utf-8")
    with pytest.raises(ConfigError, match="has no item of at least 8 tokens"):
        run(NgramDecontaminate(benchmark=str(short)), ["two words here"])


def test_fingerprint_follows_the_benchmark_content(tmp_path):
    bench = tmp_path / "items.txt"
    bench.write_text("first version of the test items, long enough to count\n", "utf-8")
    op = NgramDecontaminate(benchmark=str(bench))
    before = op.fingerprint_extra()
    bench.write_text("second version of the test items, long enough to count\n", "utf-8")
    assert op.fingerprint_extra() != before
    assert NgramDecontaminate(benchmark=str(tmp_path / "none.txt")).fingerprint_extra() == ""
