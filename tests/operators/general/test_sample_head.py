"""Sample (stateless hash sampling) and Head (global first-n): exact rows, batch-split
independence, nesting, and agreement with a plain-Python SplitMix64 reference."""

from __future__ import annotations

import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.operators.general.sample import Head, Sample

M = (1 << 64) - 1


def reference_hash(x: int) -> int:
    """SplitMix64 (Steele et al.), written out on Python ints as an independent reference."""
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def ids_table(ids: list[int], text: list[str] | None = None) -> pa.Table:
    text = text or [f"row {i} 第{i}行" for i in ids]
    return pa.table({"_id": pa.array(ids, pa.int64()), "text": text})


def kept_ids(op, batches: list[pa.Table]) -> list[int]:
    if op.is_global:
        op.fit(batches)
    return [i for b in batches for i in op.run_batch(b).kept["_id"].to_pylist()]


def test_sample_matches_the_reference_hash() -> None:
    ids = list(range(2000))
    for fraction, seed in [(0.1, 0), (0.5, 7), (0.9, 123456789)]:
        mixed_seed = reference_hash(seed)
        expected = [i for i in ids if reference_hash(i ^ mixed_seed) < fraction * 2**64]
        assert kept_ids(Sample(fraction=fraction, seed=seed), [ids_table(ids)]) == expected


def test_sample_exact_rows_and_reason() -> None:
    batch = ids_table(list(range(10)))
    result = Sample(fraction=0.5).run_batch(batch)
    assert result.kept["_id"].to_pylist() == [1, 4, 5, 6, 7]  # the reference hash agrees
    assert result.dropped["_id"].to_pylist() == [0, 2, 3, 8, 9]
    assert set(result.dropped["_reason"].to_pylist()) == {"not sampled"}


def test_sample_is_independent_of_batches_nested_and_seeded() -> None:
    ids = list(range(5000))
    whole = kept_ids(Sample(fraction=0.3, seed=1), [ids_table(ids)])
    split = kept_ids(
        Sample(fraction=0.3, seed=1), [ids_table(ids[i : i + 333]) for i in range(0, 5000, 333)]
    )
    assert whole == split
    assert 1350 < len(whole) < 1650  # 1500 expected; about 5 standard deviations either side
    smaller = kept_ids(Sample(fraction=0.1, seed=1), [ids_table(ids)])
    assert set(smaller) < set(whole)
    assert kept_ids(Sample(fraction=0.3, seed=2), [ids_table(ids)]) != whole
    assert kept_ids(Sample(fraction=1.0), [ids_table(ids)]) == ids


def test_sample_params() -> None:
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="fraction"):
            Sample(fraction=bad)


@pytest.mark.parametrize("chunk", [1, 2, 4, 7, 50])
def test_head_keeps_the_smallest_ids_whatever_the_batches(chunk: int) -> None:
    ids = [17, 3, 42, 8, 0, 25, 11, 5, 30, 1]
    batches = [ids_table(ids[i : i + chunk]) for i in range(0, len(ids), chunk)]
    op = Head(n=4)
    assert sorted(kept_ids(op, batches)) == [0, 1, 3, 5]
    dropped = [r for b in batches if (r := op.run_batch(b).dropped) is not None]
    assert {x for d in dropped for x in d["_reason"].to_pylist()} == {"beyond the first 4 rows"}


def test_head_with_fewer_rows_than_n_keeps_everything() -> None:
    assert kept_ids(Head(n=100), [ids_table([2, 1]), ids_table([0])]) == [2, 1, 0]


def test_head_fills_the_cutoff_with_fan_out_siblings_in_stream_order() -> None:
    batches = [ids_table([0, 1], ["a", "b1"]), ids_table([1, 1, 2], ["b2", "b3", "c"])]
    op = Head(n=3)
    op.fit(batches)
    assert [op.run_batch(b).kept["text"].to_pylist() for b in batches] == [["a", "b1"], ["b2"]]


def test_head_on_multi_chunk_batches_and_before_finalize() -> None:
    batch = pa.Table.from_batches(
        ids_table([0, 1, 1, 1, 2, 1], list("abcdef")).to_batches(max_chunksize=2)
    )
    assert kept_ids(Head(n=3), [batch]) == [0, 1, 1]
    with pytest.raises(OperatorContractError, match="run before summarize"):
        Head(n=1).run_batch(batch)
