"""The stages of the distributed dedup (prepflow.engine.executors.ray_dedup), run in this
process without Ray: cut into shards, shuffled into any number of partitions and merged in any
grouping, they decide exactly what the operator's own ``finalize`` decides."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from prepflow.core.operator import ID
from prepflow.data import shardfile
from prepflow.engine.context import WorkerContextSpec
from prepflow.engine.executors import ray_dedup as dd
from prepflow.operators.text.dedup import MinHashDedup, TextExactDedup


def _texts(shared_data: Path, n: int = 400) -> list[str]:
    """Real chapters with planted copies: exact, and with one word in a hundred replaced."""
    path = shared_data / "corpora" / "kjv_bible_chapters_en.jsonl"
    base = [json.loads(line)["text"] for line in path.open()][:n]
    rng = random.Random(0)
    out = []
    for i, t in enumerate(base):
        out.append(t)
        if i % 4 == 0:
            words = t.split()
            out.append(
                " ".join("X" if j % 100 == rng.randrange(100) else w for j, w in enumerate(words))
            )
        if i % 9 == 0:
            out.append(t)
    rng.shuffle(out)
    return out


def _shards(texts: list[str], shard_rows: int, tmp_path: Path) -> list[str]:
    paths = []
    for k, start in enumerate(range(0, len(texts), shard_rows)):
        part = texts[start : start + shard_rows]
        table = pa.table({"text": part, ID: pa.array(range(start, start + len(part)), pa.int64())})
        path = tmp_path / f"shard-{k:05d}.arrow"
        shardfile.write(table, path)
        paths.append(str(path))
    return paths


def _spec(op, tmp_path: Path) -> dd.OpSpec:
    context = WorkerContextSpec(tmp_path / "scratch", 0)
    fingerprint = f"{op.name}-{json.dumps(op.params.model_dump(), sort_keys=True)}"
    return (fingerprint, type(op).__module__, op.name, op.params.model_dump(), {}, context)


def _distributed(op, paths: list[str], parts: int, tmp_path: Path, rng: random.Random):
    """The executor's stages in order, with arbitrary merge groupings."""
    spec = _spec(op, tmp_path)
    summaries, bounds = zip(*(dd.summarize(spec, p) for p in paths), strict=True)
    owners = dd.Owners([b[0] for b in bounds], parts)
    groups = [[] for _ in range(parts)]
    for i, s in enumerate(summaries):
        groups[int(owners.group_of_position(i))].append(s)
    buckets = [dd.bucket(spec, s, parts) for s in summaries]
    edges = [dd.pairs(*(b[p] for b in buckets)) for p in range(parts)]

    def join(edge_list, threshold):
        split = [dd.split_edges(owners, e) for e in edge_list]
        hop1 = [
            dd.attach(owners, len(split), *(s[g] for s in split), *groups[g]) for g in range(parts)
        ]
        return [
            dd.score(spec, threshold, len(hop1), *(h[g] for h in hop1), *groups[g])
            for g in range(parts)
        ]

    if op.verify_threshold is not None:
        edges = [(u, v) for u, v, _ in join(edges, op.verify_threshold)]
    rng.shuffle(edges)
    while len(edges) > 1:  # merge forests in random groupings
        size = rng.randint(2, 3)
        edges = [dd.components(spec, *edges[i : i + size]) for i in range(0, len(edges), size)]
    dropped, heads = dd.components(spec, edges[0])
    scored = join([(dropped, heads)], None)
    u = np.concatenate([s[0] for s in scored])
    order = np.argsort(u)
    return (
        u[order],
        np.concatenate([s[1] for s in scored])[order],
        np.concatenate([s[2] for s in scored])[order],
    )


@pytest.mark.parametrize(
    ("op", "parts"),
    [
        (MinHashDedup(num_perm=128), 1),
        (MinHashDedup(num_perm=128), 5),
        (MinHashDedup(num_perm=128, verify=False), 3),
        (TextExactDedup(), 4),
    ],
    ids=["minhash-1-partition", "minhash-5-partitions", "minhash-unverified", "exact"],
)
def test_distributed_stages_decide_as_finalize(op, parts: int, tmp_path: Path, shared_data: Path):
    texts = _texts(shared_data)
    paths = _shards(texts, 70, tmp_path)
    op.finalize(functools.reduce(op.merge, (op.summarize(shardfile.read(p)) for p in paths)))
    want = op._verdict
    got = _distributed(op, paths, parts, tmp_path, random.Random(parts))
    assert len(want.dropped) > 40
    np.testing.assert_array_equal(got[0], want.dropped)
    np.testing.assert_array_equal(got[1], want.representative)
    np.testing.assert_array_equal(got[2], want.score)
