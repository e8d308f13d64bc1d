"""Global text dedup: exact (normalised hash) and MinHash near-duplicates on real documents.

Expected outcomes come from an independent plain-Python oracle: words are ``\\w+`` runs of the
NFKC-lowercased text (each Han character a word of its own), shingles are tuples of consecutive
words, and similarities are exact set Jaccard.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.operator import ID, REASON, Result
from prepflow.operators.common.minhash import cluster_heads
from prepflow.operators.text.dedup import MinHashDedup, TextExactDedup

pytest.importorskip("rensa")

_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_WORD = re.compile(rf"[{_HAN}]|[^\W{_HAN}]+")
_REASON = re.compile(r"near-duplicate of _id (\d+) \(est\. jaccard (\d\.\d\d)\)")


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def shingles(ws: list[str], n: int = 5) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)} or {tuple(ws)}


def jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = shingles(words(a), n), shingles(words(b), n)
    return len(sa & sb) / len(sa | sb)


def variant(text: str, target: float, seed: int) -> tuple[str, float]:
    """``text`` with words replaced by unique markers until its Jaccard with ``text`` is closest
    to ``target``; returns the variant and that exact Jaccard."""
    ws = words(text)
    order = random.Random(seed).sample(range(len(ws)), len(ws))

    def edited(k: int) -> str:
        out = list(ws)
        for j, pos in enumerate(order[:k]):
            out[pos] = f"edit{seed}x{j}"
        return " ".join(out)

    lo, hi = 0, len(ws)  # smallest edit count at or below the target
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if jaccard(text, edited(mid)) > target else (lo, mid)
    best = min(
        (edited(k) for k in (max(lo - 1, 0), lo)), key=lambda v: abs(jaccard(text, v) - target)
    )
    return best, jaccard(text, best)


def run_global(
    op, texts: list[str | None], batch: int | None = None, ids: list[int] | None = None
) -> Result:
    """Both passes of a global operator over ``texts`` cut into batches of ``batch`` rows."""
    table = pa.table(
        {
            ID: pa.array(ids if ids is not None else range(len(texts)), pa.int64()),
            "text": pa.array(texts, pa.string()),
        }
    )
    size = batch or max(len(texts), 1)
    batches = [table.slice(i, size) for i in range(0, len(texts), size)]
    op.fit(batches)
    results = [op.run_batch(b) for b in batches]
    dropped = [r.dropped for r in results if r.dropped is not None]
    return Result(
        kept=pa.concat_tables([r.kept for r in results]),
        dropped=pa.concat_tables(dropped) if dropped else None,
    )


def dropped_reasons(result: Result) -> dict[int, str]:
    if result.dropped is None:
        return {}
    return dict(
        zip(result.dropped[ID].to_pylist(), result.dropped[REASON].to_pylist(), strict=True)
    )


def fullwidth(text: str) -> str:
    """The full-width form of ASCII text (U+FF01..FF5E, ideographic space), which NFKC undoes."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) for c in text)


def load(shared_data: Path, name: str) -> list[str]:
    with open(shared_data / "corpora" / name, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


# ---- MinHashDedup on planted near-duplicates -------------------------------------------------


@pytest.fixture(scope="module")
def planted(shared_data: Path):
    """Genesis 1-30 and 20 long Python-docs paragraphs, plus variants at known Jaccard."""
    kjv = load(shared_data, "kjv_bible_chapters_en.jsonl")[:30]
    py = [
        t
        for t in load(shared_data, "python_docs_en_paragraphs.jsonl")
        if t.isascii() and len(words(t)) >= 150
    ][:20]
    originals = kjv + py
    worst = max(jaccard(a, b) for i, a in enumerate(originals) for b in originals[i + 1 :])
    assert worst < 0.5, "the source documents must not be near-duplicates of each other"
    kjv_v = {t: variant(kjv[0], t, seed) for seed, t in enumerate((0.95, 0.85, 0.6, 0.3))}
    py_v = {t: variant(py[0], t, 10 + seed) for seed, t in enumerate((0.95, 0.85, 0.6, 0.3))}
    for target, (_, j) in [*kjv_v.items(), *py_v.items()]:
        assert abs(j - target) < 0.02
    # _id 0 is a variant of a Python paragraph: it, not its original, must be kept.
    texts = [
        py_v[0.95][0],
        *kjv,
        *py,
        *(v for v, _ in kjv_v.values()),
        *(py_v[t][0] for t in (0.85, 0.6, 0.3)),
    ]
    ids = {
        "py_v95": 0,
        "genesis1": 1,
        "py0": 31,
        "kjv_v95": 51,
        "kjv_v85": 52,
        "kjv_v60": 53,
        "kjv_v30": 54,
        "py_v85": 55,
        "py_v60": 56,
        "py_v30": 57,
    }
    assert texts[ids["genesis1"]] == kjv[0] and texts[ids["py0"]] == py[0]
    return texts, ids


def test_minhash_drops_planted_near_duplicates_and_keeps_lowest_id(planted):
    texts, ids = planted
    reasons = dropped_reasons(run_global(MinHashDedup(), texts))

    expected = {
        ids["kjv_v95"]: ids["genesis1"],
        ids["kjv_v85"]: ids["genesis1"],
        ids["py0"]: ids["py_v95"],
        ids["py_v85"]: ids["py_v95"],
    }
    assert sorted(reasons) == sorted(expected)  # the 0.6 and 0.3 variants are kept
    for doc, reason in reasons.items():
        rep, est = _REASON.fullmatch(reason).groups()
        assert int(rep) == expected[doc]
        assert abs(float(est) - jaccard(texts[doc], texts[int(rep)])) <= 0.07


def test_minhash_result_does_not_depend_on_batching(planted):
    texts, _ = planted
    whole = run_global(MinHashDedup(), texts)
    small = run_global(MinHashDedup(), texts, batch=7)
    assert dropped_reasons(small) == dropped_reasons(whole)
    assert small.kept[ID].to_pylist() == whole.kept[ID].to_pylist()


def test_minhash_verification_removes_false_candidates(planted):
    """With 32 bands of 4 rows the 0.6 variant of Genesis 1 becomes a candidate (probability
    0.99); verification drops it from the cluster, LSH alone does not."""
    texts, ids = planted
    raw = dropped_reasons(run_global(MinHashDedup(bands=32, rows=4, verify=False), texts))
    verified = dropped_reasons(run_global(MinHashDedup(bands=32, rows=4), texts))

    rep, est = _REASON.fullmatch(raw[ids["kjv_v60"]]).groups()
    assert int(rep) == ids["genesis1"] and abs(float(est) - 0.6) <= 0.07
    assert ids["kjv_v60"] not in verified
    assert {ids["kjv_v95"], ids["kjv_v85"]} <= set(verified)


def test_minhash_chinese_uses_character_shingles(shared_data: Path):
    """Chinese has no spaces: word shingles fall back to characters, so a man page with 10% of
    its characters replaced is still found, with an estimate matching character 5-grams."""
    pages = [
        t
        for t in load(shared_data, "manpages_zh_CN.jsonl")
        if len(re.findall(f"[{_HAN}]", t)) >= 400
    ]
    originals = []
    for page in pages:
        if all(jaccard(page, o) < 0.5 for o in originals):
            originals.append(page)
        if len(originals) == 8:
            break
    near, j_near = variant(originals[0], 0.9, seed=1)
    far, j_far = variant(originals[0], 0.5, seed=2)
    texts = [*originals, near, far]

    reasons = dropped_reasons(run_global(MinHashDedup(), texts))

    assert list(reasons) == [8]
    rep, est = _REASON.fullmatch(reasons[8]).groups()
    assert rep == "0" and abs(float(est) - j_near) <= 0.07
    assert j_far < 0.55


def test_minhash_char_shingles_catch_typos(shared_data: Path):
    docs = [
        t
        for t in load(shared_data, "python_docs_en_paragraphs.jsonl")
        if t.isascii() and len(words(t)) >= 150
    ][:10]
    rng = random.Random(3)
    chars = list(docs[0])
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    for pos in rng.sample(letters, 6):  # six one-letter typos
        chars[pos] = "q" if chars[pos] != "q" else "z"
    typo = "".join(chars)

    reasons = dropped_reasons(run_global(MinHashDedup(shingle="char", ngram=5), [*docs, typo]))

    assert list(reasons) == [10]
    assert reasons[10].startswith("near-duplicate of _id 0 ")


def test_minhash_short_empty_and_null_texts():
    texts = ["Short note.", "short   NOTE", None, "", "   ", "another short note", None]
    reasons = dropped_reasons(run_global(MinHashDedup(), texts))
    # one-shingle texts are duplicates when equal; texts without tokens are never duplicates
    assert reasons == {1: "near-duplicate of _id 0 (est. jaccard 1.00)"}


def test_minhash_fan_out_siblings_keep_the_first():
    text = "the same chunk of a document split by an earlier step into pieces"
    result = run_global(MinHashDedup(), [text, "something else entirely here", text], ids=[5, 6, 5])
    assert result.kept.column("text").to_pylist() == [text, "something else entirely here"]
    assert result.dropped[REASON].to_pylist() == ["near-duplicate of _id 5 (est. jaccard 1.00)"]


def test_minhash_lsh_params_follow_datasketch():
    # datasketch.lsh._optimal_param(threshold, num_perm, 1 - w, w) gives these (bands, rows)
    assert MinHashDedup(num_perm=128, false_negative_weight=0.5).lsh_params() == (9, 13)
    assert MinHashDedup(num_perm=256, threshold=0.7, false_negative_weight=0.5).lsh_params() == (
        25,
        10,
    )
    assert MinHashDedup(num_perm=128, threshold=0.9, false_negative_weight=0.9).lsh_params() == (
        8,
        16,
    )
    assert MinHashDedup(bands=20, rows=5).lsh_params() == (20, 5)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bands": 10}, "give bands and rows together"),
        ({"num_perm": 64, "bands": 10, "rows": 8}, "bands * rows = 80 exceeds num_perm = 64"),
        ({"threshold": 0}, "threshold"),
        ({"shingle": "sentence"}, "shingle"),
    ],
)
def test_minhash_rejects_bad_params(params, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        MinHashDedup(**params)


# ---- the global-operator contract ------------------------------------------------------------


@pytest.mark.parametrize("op_class", [MinHashDedup, TextExactDedup])
def test_global_contract_is_enforced(op_class):
    table = pa.table({ID: pa.array([0, 1], pa.int64()), "text": ["a b c", "a b c"]})
    op = op_class()
    with pytest.raises(OperatorContractError, match="summarize\\(\\) every batch"):
        op.run_batch(table)
    op.fit([table.slice(0, 1)])
    with pytest.raises(OperatorContractError, match="_id 1 was not summarized"):
        op.run_batch(table)

    twice = op_class()
    with pytest.raises(OperatorContractError, match="_id 1 was summarized twice"):
        twice.fit([table, table.slice(1)])


def test_text_column_must_exist_and_hold_strings():
    with pytest.raises(ConfigError, match="no column 'body'"):
        MinHashDedup().bind({"text": "body"}).summarize(pa.table({ID: [0], "text": ["x"]}))
    with pytest.raises(ConfigError, match="must hold strings, not int64"):
        TextExactDedup().summarize(pa.table({ID: [0], "text": [3]}))


# ---- TextExactDedup --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "texts", "dropped"),
    [
        (
            {},
            [
                "Hello  World",
                "hello world",
                fullwidth("HELLO WORLD"),
                " hello world\n",
                "Hello, World",
            ],
            {1: 0, 2: 0, 3: 0},
        ),
        ({"strip_punctuation": True}, ["Hello, World!", "hello world", "hello—world"], {1: 0}),
        ({"whitespace": "remove"}, ["hello world", "helloworld", "hel lo wor ld"], {1: 0, 2: 0}),
        ({"whitespace": "keep"}, ["hello  world", "hello world", "hello  world"], {2: 0}),
        ({"lowercase": False}, ["Hello", "hello", "Hello"], {2: 0}),
        ({"nfkc": False}, [fullwidth("HELLO"), "hello", fullwidth("hello")], {2: 0}),
        (
            {},
            ["", None, "  ", None, "x"],
            {2: 0},
        ),  # empty texts are equal; nulls are never duplicates
    ],
)
def test_exact_dedup_normalisation(params, texts, dropped):
    reasons = dropped_reasons(run_global(TextExactDedup(**params), texts))
    assert reasons == {d: f"exact duplicate of _id {r}" for d, r in dropped.items()}


@pytest.mark.parametrize(
    ("hash_name", "bits"), [("xxhash", 64), ("xxhash", 128), ("blake2b", 64), ("blake2b", 128)]
)
def test_exact_dedup_matches_oracle_on_real_corpus(shared_data: Path, hash_name, bits):
    """Fortunes (with their natural duplicates) plus re-cased, re-spaced copies of 50 of them."""
    fortunes = load(shared_data, "fortunes_en.jsonl")[:3000]
    rng = random.Random(7)
    copies = [" ".join(fortunes[i].upper().split()) + "  " for i in rng.sample(range(3000), 50)]
    texts = fortunes + copies
    first: dict[str, int] = {}
    expected = {}
    for i, t in enumerate(texts):
        key = " ".join(unicodedata.normalize("NFKC", t).lower().split())
        if key in first:
            expected[i] = f"exact duplicate of _id {first[key]}"
        else:
            first[key] = i
    assert len(expected) > 50  # the planted copies plus natural duplicates

    reasons = dropped_reasons(
        run_global(TextExactDedup(hash=hash_name, hash_bits=bits), texts, batch=1000)
    )
    assert reasons == expected


def test_exact_dedup_fan_out_siblings_keep_the_first():
    result = run_global(TextExactDedup(), ["chunk", "other", "CHUNK"], ids=[3, 4, 3])
    assert result.kept.column("text").to_pylist() == ["chunk", "other"]
    assert dropped_reasons(result) == {3: "exact duplicate of _id 3"}


@pytest.mark.parametrize(
    ("op", "reason"),
    [
        (MinHashDedup(), "near-duplicate of _id 0 (est. jaccard 1.00)"),
        (MinHashDedup(shingle="char"), "near-duplicate of _id 0 (est. jaccard 1.00)"),
        (TextExactDedup(), "exact duplicate of _id 0"),
    ],
)
def test_large_string_columns(op, reason):
    texts = pa.array(
        ["Hello world 你好世界 again", "hello WORLD  你好世界 again", None], pa.large_string()
    )
    table = pa.table({ID: pa.array([0, 1, 2], pa.int64()), "text": texts})
    op.fit([table])
    assert dropped_reasons(op.run_batch(table)) == {1: reason}


def test_cluster_heads_match_breadth_first_components():
    """Each row's head is the smallest row of its connected component, on random graphs."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        u, v = rng.integers(0, n, 2 * n), rng.integers(0, n, 2 * n)
        u, v = u[u < v], v[u < v]
        neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
        for a, b in zip(u.tolist(), v.tolist(), strict=True):
            neighbours[a].add(b)
            neighbours[b].add(a)
        expected = [-1] * n
        for start in range(n):  # ascending, so each component is first reached at its minimum
            if expected[start] < 0:
                expected[start], frontier = start, [start]
                while frontier:
                    nxt = [j for i in frontier for j in neighbours[i] if expected[j] < 0]
                    for j in nxt:
                        expected[j] = start
                    frontier = nxt
        assert cluster_heads(n, u, v).tolist() == expected
