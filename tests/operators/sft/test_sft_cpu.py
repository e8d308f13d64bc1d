"""CPU SFT operators on literal inputs: score threshold, k-center selection, chat messages."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError
from prepflow.operators.sft.chat import ToChatMessages
from prepflow.operators.sft.diversity import KCenterSelect, k_center_greedy
from prepflow.operators.sft.judges import QualityScoreFilter


def test_quality_score_filter_reason_names_score_and_rationale() -> None:
    batch = pa.table(
        {
            "_id": pa.array([0, 1, 2, 3], pa.int64()),
            "score": [4.5, 3.0, 4.0, None],
            "rationale": ["good", "misses the second part", "fine", None],
        }
    )
    r = QualityScoreFilter(min_score=4).run_batch(batch)
    assert r.kept.column("_id").to_pylist() == [0, 2]
    assert r.dropped.column("_reason").to_pylist() == [
        "min_score: score=3 < 4; misses the second part",
        "min_score: no quality score",
    ]


def test_quality_score_filter_without_rationale_column() -> None:
    batch = pa.table({"_id": pa.array([0, 1], pa.int64()), "s": [2.5, 5.0]})
    r = QualityScoreFilter(min_score=3).bind({"score": "s"}).run_batch(batch)
    assert r.kept.column("_id").to_pylist() == [1]
    assert r.dropped.column("_reason").to_pylist() == ["min_score: score=2.5 < 3"]


def test_k_center_greedy_picks_farthest_points() -> None:
    x = np.array([[0.0], [1.0], [10.0], [4.0], [9.0]], np.float32)
    selected, nearest, dist = k_center_greedy(x, 3, "euclidean")
    # start at 0; farthest is 10 (row 2); then farthest from {0, 10} is 4 (row 3)
    assert selected == [0, 2, 3]
    assert [selected[j] for j in nearest] == [0, 0, 2, 3, 2]
    assert dist.tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


def run_global(op: KCenterSelect, batches: list[pa.Table]):
    op.fit(batches)
    return [op.run_batch(b) for b in batches]


def emb_batch(ids: list[int], vectors: list[list[float]]) -> pa.Table:
    return pa.table(
        {"_id": pa.array(ids, pa.int64()), "embedding": pa.array(vectors, pa.list_(pa.float32()))}
    )


def test_k_center_select_across_batches_with_reasons() -> None:
    b1 = emb_batch([0, 1], [[1.0, 0.0], [0.99, 0.1]])
    b2 = emb_batch([2, 3], [[0.0, 1.0], [0.1, 0.99]])
    r1, r2 = run_global(KCenterSelect(k=2), [b1, b2])
    assert r1.kept.column("_id").to_pylist() == [0]
    assert r2.kept.column("_id").to_pylist() == [2]
    assert r1.dropped.column("_reason").to_pylist() == [
        "not selected (nearest selected _id 0, distance 0.00506)"
    ]
    assert r2.dropped.column("_reason").to_pylist() == [
        "not selected (nearest selected _id 2, distance 0.00506)"
    ]


def test_k_center_select_fraction_and_fanout_siblings() -> None:
    # three rows share _id 7 (fan-out siblings): each is a separate candidate
    b = emb_batch([7, 7, 7, 8], [[0.0], [5.0], [5.0], [2.0]])
    (r,) = run_global(KCenterSelect(fraction=0.5, metric="euclidean"), [b])
    assert r.kept.column("embedding").to_pylist() == [[0.0], [5.0]]
    assert r.dropped.column("_reason").to_pylist() == [
        "not selected (nearest selected _id 7, distance 0)",
        "not selected (nearest selected _id 7, distance 2)",
    ]


def test_k_center_select_stops_when_rest_are_duplicates() -> None:
    b = emb_batch([0, 1, 2], [[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    (r,) = run_global(KCenterSelect(k=3), [b])  # cosine: all three point the same way
    assert r.kept.column("_id").to_pylist() == [0]
    assert r.n_dropped == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [({}, "exactly one of 'k' and 'fraction'"), ({"k": 2, "fraction": 0.5}, "exactly one")],
)
def test_k_center_select_size_params(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KCenterSelect(**params)


def test_k_center_select_rejects_ragged_and_zero_vectors() -> None:
    with pytest.raises(ConfigError, match="row _id 1 has a 1-dim 'embedding', earlier rows 2-dim"):
        KCenterSelect(k=1).summarize(emb_batch([0, 1], [[1.0, 0.0], [1.0]]))
    with pytest.raises(ConfigError, match="shards hold embeddings of"):
        KCenterSelect(k=1).fit([emb_batch([0], [[1.0, 0.0]]), emb_batch([1], [[1.0]])])
    with pytest.raises(ConfigError, match="row _id 1 has a zero vector"):
        KCenterSelect(k=1).fit([emb_batch([0, 1], [[1.0, 0.0], [0.0, 0.0]])])


def test_to_chat_messages_with_system_column_and_default() -> None:
    batch = pa.table(
        {
            "_id": pa.array([0, 1, 2], pa.int64()),
            "instruction": ["Say hi.", "Add 2 and 2.", None],
            "response": ["Hi!", "4", "x"],
            "sys": ["Be terse.", None, None],
        }
    )
    op = ToChatMessages(system_prompt="You are helpful.").bind({"system": "sys"})
    r = op.run_batch(batch)
    assert r.kept.column("messages").to_pylist() == [
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi!"},
        ],
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Add 2 and 2."},
            {"role": "assistant", "content": "4"},
        ],
    ]
    assert r.failed.column("_id").to_pylist() == [2]
    assert r.failed.column("_error").to_pylist() == ["column 'instruction' is null"]


def test_to_chat_messages_without_system() -> None:
    batch = pa.table({"_id": pa.array([0], pa.int64()), "q": ["Hi?"], "a": ["Hello."]})
    r = ToChatMessages().bind({"instruction": "q", "response": "a"}).run_batch(batch)
    assert r.kept.column("messages").to_pylist() == [
        [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    ]
    assert r.failed is None
