"""Global deduplication as a distributed stage (the ``ray`` executor's; the functions here run in
its tasks and hold numpy arrays only).

A dedup operator (:mod:`prepflow.operators.common.dedup`) decides in ``finalize`` over every
fingerprint at once. Here the same decision is reached with no process holding more than its
part: keys and fingerprints, never documents.

1. **summarize** each shard (in parallel): its row keys and fingerprints (a MinHash signature or
   a digest), sorted by key, kept in the object store. Shards cover disjoint key ranges (a
   shard's rows keep the ``_id`` of its input rows), so a key's *owner* shard is found from the
   ranges alone.
2. **bucket**: each shard turns its fingerprints into bucket rows (``op.groups``: one per LSH
   band for MinHash, the digest for exact dedup) and splits them by a hash of the bucket into
   ``P`` partitions: the shuffle.
3. **pairs**: each partition sorts its bucket rows and pairs every member of a bucket with the
   bucket's smallest key: exactly the candidate pairs ``finalize`` makes.
4. **verify** (when the operator asks): pairs go to the owner group of their first key, which
   attaches that row's fingerprint, then to the owner group of the second, which scores the pair
   (``op.similarity``) and keeps it at or above the threshold.
5. **components**: each partition's edges are reduced to a forest of (node, smallest node of its
   component) by union-find, and forests are merged pairwise by the same rule until one is
   left. The smallest key of a component is its representative whatever the merge order, so the
   result is deterministic; the forest holds the rows that have a duplicate, nothing else.
6. **score** each dropped row against its representative (the same two-hop join) and hand each
   shard its part of the verdict (``op.install``) before it is filtered.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from prepflow.core.errors import PrepflowError
from prepflow.data.runstore import read_shard
from prepflow.engine.executors.worker import OpSpec, worker_ops

#: A shard's summary: (sorted keys of every row, sorted keys of fingerprinted rows, their
#: fingerprints).
Summary = tuple[np.ndarray, np.ndarray, np.ndarray]
Edges = tuple[np.ndarray, np.ndarray]  # (u, v) row keys


def shardable(op: Any) -> bool:
    """Whether a global operator offers the distributed form of its finalize."""
    return all(
        hasattr(op, name)
        for name in ("groups", "verify_threshold", "similarity", "components", "install")
    )


def _op(spec: OpSpec) -> Any:
    return worker_ops([spec])[0]


# ---- 1. summarize ------------------------------------------------------------------------------


def summarize(spec: OpSpec, source: str) -> tuple[Summary, tuple[int, int] | None]:
    """A shard's summary and its key range (None when it has no rows)."""
    state = _op(spec).summarize(read_shard(source))
    seen = np.sort(np.concatenate([np.zeros(0, np.int64), *state.seen]))
    keys = np.concatenate([np.zeros(0, np.int64), *state.keys])
    # a shard with no fingerprinted row has no fingerprint width: it is never looked up
    values = np.concatenate(state.values) if state.values else np.zeros((0, 0), np.uint64)
    order = np.argsort(keys, kind="stable")
    bounds = (int(seen[0]), int(seen[-1])) if len(seen) else None
    return (seen, keys[order], values[order]), bounds


# ---- 2. bucket: the shuffle by bucket ----------------------------------------------------------


def _mix(groups: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each bucket row (for partitioning only)."""
    h = np.zeros(len(groups), np.uint64)
    for col in groups.T:
        h = (h ^ col) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


def bucket(spec: OpSpec, summary: Summary, parts: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The shard's bucket rows, split into ``parts`` partitions by bucket: (groups, owner keys)."""
    _, keys, values = summary
    if not len(keys):
        empty = (np.zeros((0, 1), np.uint64), np.zeros(0, np.int64))
        return [empty] * parts
    groups = _op(spec).groups(keys, values)
    owners = np.tile(keys, len(groups) // len(keys))
    part = _mix(groups) % np.uint64(parts)
    order = np.argsort(part, kind="stable")
    cuts = np.searchsorted(part[order], np.arange(parts + 1, dtype=np.uint64))
    return [(groups[order[a:b]], owners[order[a:b]]) for a, b in itertools.pairwise(cuts.tolist())]


# ---- 3. pairs ----------------------------------------------------------------------------------


def pairs(*pieces: tuple[np.ndarray, np.ndarray]) -> Edges:
    """Candidate pairs of one partition: each bucket's members with its smallest key.

    Most buckets hold one row: rows whose bucket hash is unique in the partition are set aside
    first (one sort of a 64-bit hash), and only the rest are sorted by bucket and key."""
    present = [p for p in pieces if len(p[1])]
    if not present:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    groups = np.concatenate([p[0] for p in present])
    keys = np.concatenate([p[1] for p in present])
    h = _mix(groups)
    order = np.argsort(h)
    equal = h[order][1:] == h[order][:-1]
    shared = np.zeros(len(h), bool)
    shared[1:] |= equal
    shared[:-1] |= equal
    groups, keys = groups[order[shared]], keys[order[shared]]
    order = np.lexsort([keys, *groups.T[::-1]])  # by bucket, then key
    groups, keys = groups[order], keys[order]
    head = np.ones(len(keys), bool)
    head[1:] = (groups[1:] != groups[:-1]).any(axis=1)
    first = keys[np.maximum.accumulate(np.where(head, np.arange(len(keys)), 0))]
    return _unique_edges(first[~head], keys[~head])


def _unique_edges(u: np.ndarray, v: np.ndarray) -> Edges:
    order = np.lexsort([v, u])
    u, v = u[order].astype(np.int64), v[order].astype(np.int64)
    new = np.ones(len(u), bool)
    new[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    return u[new], v[new]


# ---- 4 and 6. the two-hop join that scores pairs -----------------------------------------------


class Owners:
    """Which group of shards owns a key: shards sorted by their (disjoint) key ranges, cut into
    ``parts`` contiguous groups."""

    def __init__(self, starts: list[int], parts: int) -> None:
        self.starts = np.asarray(starts, np.int64)
        self.parts = parts

    def group_of_position(self, position: np.ndarray | int) -> np.ndarray:
        return np.asarray(position) * self.parts // max(1, len(self.starts))

    def group(self, keys: np.ndarray) -> np.ndarray:
        return self.group_of_position(np.searchsorted(self.starts, keys, side="right") - 1)

    def split(self, keys: np.ndarray) -> list[np.ndarray]:
        """Row masks of ``keys`` by owner group."""
        g = self.group(keys)
        return [g == p for p in range(self.parts)]


def _lookup(summaries: tuple[Summary, ...], keys: np.ndarray) -> np.ndarray:
    """The fingerprints of ``keys`` from the summaries of their owner shards."""
    all_keys = np.concatenate([s[1] for s in summaries])
    values = np.concatenate([s[2] for s in summaries if len(s[1])])
    order = np.argsort(all_keys, kind="stable")
    at = order[np.minimum(np.searchsorted(all_keys[order], keys), len(order) - 1)]
    if not np.array_equal(all_keys[at], keys):
        raise PrepflowError("distributed dedup: a pair's row is not in its owner shards")
    return values[at]


def attach(
    owners: Owners, n_pieces: int, *args: Any
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Hop 1, in the owner group of the pairs' first keys: ``args`` holds ``n_pieces`` pieces
    of pairs, then the group's summaries. Gives the pairs with their first keys' fingerprints,
    split by the owner group of their second keys."""
    edge_pieces: tuple[Edges, ...] = args[:n_pieces]
    summaries: tuple[Summary, ...] = args[n_pieces:]
    u = np.concatenate([np.zeros(0, np.int64), *(e[0] for e in edge_pieces)])
    v = np.concatenate([np.zeros(0, np.int64), *(e[1] for e in edge_pieces)])
    u, v = _unique_edges(u, v)
    if not len(u):
        return [(u, v, np.zeros((0, 0), np.uint64))] * owners.parts
    fu = _lookup(summaries, u)
    return [(u[m], v[m], fu[m]) for m in owners.split(v)]


def score(
    spec: OpSpec, threshold: float | None, n_pieces: int, *args: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hop 2, in the owner group of the second keys (``args``: ``n_pieces`` pieces from
    :func:`attach`, then the group's summaries): each pair's score, and (with a ``threshold``)
    only the pairs that reach it."""
    pieces = args[:n_pieces]
    summaries: tuple[Summary, ...] = args[n_pieces:]
    present = [p for p in pieces if len(p[0])]
    if not present:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    u = np.concatenate([p[0] for p in present])
    v = np.concatenate([p[1] for p in present])
    fu = np.concatenate([p[2] for p in present])
    s = _op(spec).similarity(fu, _lookup(summaries, v))
    if threshold is not None:
        keep = s >= threshold
        u, v, s = u[keep], v[keep], s[keep]
    return u, v, s


def split_edges(owners: Owners, edges: Edges) -> list[Edges]:
    """Pairs split by the owner group of their first keys (the input of :func:`attach`)."""
    u, v = edges
    return [(u[m], v[m]) for m in owners.split(u)]


# ---- 5. connected components -------------------------------------------------------------------


def components(spec: OpSpec, *forests: Edges) -> Edges:
    """Union-find over edges (or forests of earlier calls): (node, representative) for every
    node whose representative is another, the representative being the component's smallest
    key. Merging forests by this rule in any grouping gives the same result."""
    present = [f for f in forests if len(f[0])]
    if not present:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    u = np.concatenate([f[0] for f in present])
    v = np.concatenate([f[1] for f in present])
    nodes = np.unique(np.concatenate([u, v]))  # ascending: node order is key order
    head = _op(spec).components(len(nodes), np.searchsorted(nodes, u), np.searchsorted(nodes, v))
    moved = np.flatnonzero(head != np.arange(len(nodes)))
    return nodes[moved], nodes[head[moved]]
