"""Every global operator is mergeable: shard summaries merged in any order and any grouping (and
through pickle, as a cluster would ship them) give the same decisions, on real text."""

from __future__ import annotations

import functools
import json
import pickle
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from prepflow.core.operator import ID, REASON, Operator
from prepflow.operators.general.dedup import ExactDedup
from prepflow.operators.general.sample import Head
from prepflow.operators.sft.diversity import KCenterSelect
from prepflow.operators.text.dedup import MinHashDedup, TextExactDedup

SHARD_ROWS = 97


@pytest.fixture(scope="module")
def shards(shared_data: Path) -> list[pa.Table]:
    """Fortunes with planted near and exact duplicates, cut into shards; with an embedding."""
    with open(shared_data / "corpora" / "fortunes_en.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(600), f, strict=False)]
    rng = random.Random(5)
    texts += [texts[rng.randrange(600)] for _ in range(60)]  # exact copies
    texts += [texts[rng.randrange(600)] + " Indeed." for _ in range(60)]  # near copies
    rng.shuffle(texts)
    vectors = np.random.default_rng(1).normal(size=(len(texts), 8)).astype(np.float32)
    table = pa.table(
        {
            ID: pa.array(range(len(texts)), pa.int64()),
            "text": texts,
            "embedding": pa.array(vectors.tolist(), pa.list_(pa.float32())),
        }
    )
    return [table.slice(i, SHARD_ROWS) for i in range(0, table.num_rows, SHARD_ROWS)]


def decisions(op: Operator, shards: list[pa.Table]) -> list[tuple[list[int], list[str]]]:
    out = []
    for shard in shards:
        result = op.run_batch(shard)
        dropped = result.dropped
        out.append(
            (
                result.kept[ID].to_pylist(),
                [] if dropped is None else dropped[REASON].to_pylist(),
            )
        )
    return out


def tree_merge(op: Operator, states: list, rng: random.Random) -> object:
    """Merge ``states`` in a random order and a random grouping, pickling each state first."""
    states = [pickle.loads(pickle.dumps(s)) for s in states]
    rng.shuffle(states)
    while len(states) > 1:
        i = rng.randrange(len(states) - 1)
        states[i : i + 2] = [op.merge(states[i], states[i + 1])]
    return states[0]


FACTORIES: dict[str, Callable[[], Operator]] = {
    "MinHashDedup": lambda: MinHashDedup(threshold=0.7),
    "TextExactDedup": TextExactDedup,
    "ExactDedup": lambda: ExactDedup(columns=["text"]),
    "Head": lambda: Head(n=250),
    "KCenterSelect": lambda: KCenterSelect(k=40),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_any_merge_order_and_grouping_gives_the_same_decisions(name, shards):
    reference = FACTORIES[name]()
    reference.fit(shards)  # summarize and merge in shard order
    expected = decisions(reference, shards)
    assert sum(len(reasons) for _, reasons in expected) > 0  # something was decided
    for seed in range(3):
        op = FACTORIES[name]()
        states = [op.summarize(s) for s in shards]
        op.finalize(tree_merge(op, states, random.Random(seed)))
        assert decisions(op, shards) == expected, f"{name}, merge order {seed}"


def test_merge_is_associative_for_dedup_states(shards):
    op = MinHashDedup()
    a, b, c = (op.summarize(s) for s in shards[:3])
    left, right = MinHashDedup(), MinHashDedup()
    left.finalize(op.merge(op.merge(a, b), c))
    right.finalize(op.merge(a, op.merge(b, c)))
    assert decisions(left, shards[:3]) == decisions(right, shards[:3])


def test_state_holds_fingerprints_not_texts(shards):
    state = TextExactDedup().summarize(shards[0])
    blob = pickle.dumps(state)
    assert shards[0]["text"][0].as_py().encode() not in blob
    assert functools.reduce(lambda n, v: n + v.nbytes, state.values, 0) == 16 * SHARD_ROWS
