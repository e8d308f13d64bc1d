"""ExactDedup: exact outputs on literal rows, multi-column framing, fan-out siblings, and the same
result whatever the batch boundaries or batch order, including on a real corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.operator import Result
from prepflow.operators.general.dedup import ExactDedup


def run(op: ExactDedup, batches: list[pa.Table]) -> list[Result]:
    """What the engine does with a global operator: summarize and merge every batch, finalize,
    then run each."""
    op.fit(batches)
    return [op.run_batch(b) for b in batches]


def outcome(results: list[Result]) -> tuple[list[int], dict[int, str]]:
    kept = sorted(i for r in results for i in r.kept["_id"].to_pylist())
    reasons = {
        row["_id"]: row["_reason"]
        for r in results
        if r.dropped is not None
        for row in r.dropped.select(["_id", "_reason"]).to_pylist()
    }
    return kept, reasons


def table(ids: list[int], **columns: list) -> pa.Table:
    return pa.table({"_id": pa.array(ids, pa.int64()), **columns})


def test_drops_later_duplicates_with_the_first_id() -> None:
    batch = table(
        list(range(8)), text=["hello", "你好", "hello", "Hello", None, "你好", None, "hello "]
    )
    (result,) = run(ExactDedup(), [batch])
    assert result.kept.to_pylist() == [
        {"_id": 0, "text": "hello"},
        {"_id": 1, "text": "你好"},
        {"_id": 3, "text": "Hello"},
        {"_id": 4, "text": None},
        {"_id": 7, "text": "hello "},
    ]
    assert result.dropped.to_pylist() == [
        {"_id": 2, "text": "hello", "_reason": "duplicate of _id 0"},
        {"_id": 5, "text": "你好", "_reason": "duplicate of _id 1"},
        {"_id": 6, "text": None, "_reason": "duplicate of _id 4"},
    ]


def test_first_occurrence_is_the_smallest_id_not_the_first_seen() -> None:
    batches = [table([9, 4], text=["x", "y"]), table([2, 5], text=["x", "y"])]
    assert outcome(run(ExactDedup(), batches)) == (
        [2, 4],
        {9: "duplicate of _id 2", 5: "duplicate of _id 4"},
    )


def test_multi_column_values_are_framed_unambiguously() -> None:
    batch = table(
        [0, 1, 2, 3, 4, 5], a=["ab", "a", "ab", "", None, ""], b=["c", "bc", "c", None, "", None]
    )
    kept, reasons = outcome(run(ExactDedup(columns=["a", "b"]), [batch]))
    assert kept == [0, 1, 3, 4]
    assert reasons == {2: "duplicate of _id 0", 5: "duplicate of _id 3"}


def test_non_string_columns() -> None:
    batch = table(
        [0, 1, 2, 3, 4, 5],
        n=[1, 1, 2, 2, None, 1],
        x=[0.5, 0.5, 0.5, 0.25, None, float("nan")],
        tags=[["a"], ["a"], ["a", "b"], [], None, ["a"]],
    )
    kept, reasons = outcome(run(ExactDedup(columns=["n", "x", "tags"]), [batch]))
    assert kept == [0, 2, 3, 4, 5]
    assert reasons == {1: "duplicate of _id 0"}


def test_identical_fan_out_siblings_keep_one() -> None:
    # three chunks of document 0 (siblings share a shard), two of them identical
    batches = [table([0, 0, 0], text=["第一段", "第二段", "第一段"]), table([1], text=["第一段"])]
    results = run(ExactDedup(), batches)
    assert [r.kept["text"].to_pylist() for r in results] == [["第一段", "第二段"], []]
    assert [r.dropped["_reason"].to_pylist() for r in results] == [
        ["duplicate of _id 0"],
        ["duplicate of _id 0"],
    ]


@pytest.mark.parametrize("chunk", [1, 3, 5, 100])
def test_same_result_for_any_batch_split_and_order(chunk: int) -> None:
    rng = random.Random(chunk)
    texts = [rng.choice(["a", "b", "c", "数据", "清洗", None]) for _ in range(60)]
    full = table(list(range(60)), text=texts)
    expected = outcome(run(ExactDedup(), [full]))
    batches = [full.slice(i, chunk) for i in range(0, 60, chunk)]
    rng.shuffle(batches)
    assert outcome(run(ExactDedup(), batches)) == expected
    first = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    assert expected[0] == sorted(first.values())


def test_real_corpus_matches_a_plain_python_dedup(shared_data: Path) -> None:
    lines = (shared_data / "corpora" / "fortunes_zh.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    full = table(list(range(len(texts))), text=texts)
    first: dict[str, int] = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    expected_reasons = {
        i: f"duplicate of _id {first[t]}" for i, t in enumerate(texts) if first[t] != i
    }
    op = ExactDedup()
    kept, reasons = outcome(run(op, [full.slice(i, 777) for i in range(0, full.num_rows, 777)]))
    assert kept == sorted(first.values())
    assert reasons == expected_reasons
    assert len(expected_reasons) > 0
    # a shard's state is its row keys and one 16-byte digest per row, not the texts
    state = op.summarize(full.slice(0, 777))
    assert [v.shape[1] * v.itemsize for v in state.values] == [16]
    assert sum(len(k) for k in state.keys) == 777 and not any(
        v.dtype == object for v in state.values
    )


def test_errors() -> None:
    with pytest.raises(OperatorContractError, match=r"summarize\(\) every batch"):
        ExactDedup().run_batch(table([0], text=["a"]))
    with pytest.raises(ConfigError, match=r"no column\(s\) 'body'"):
        ExactDedup(columns=["body"]).summarize(table([0], text=["a"]))
    with pytest.raises(ConfigError, match="listed more than once"):
        ExactDedup(columns=["text", "text"])
    assert [c.name for c in ExactDedup(columns=["q", "a"]).required_inputs()] == ["q", "a"]
