"""Mergeable global deduplication: what every dedup filter shares.

A dedup filter fingerprints rows (a digest, a MinHash signature) and keeps, of every group of
duplicates, the row with the smallest key. It follows the global-operator protocol:

* ``summarize(shard)`` -> a :class:`DedupState`: the keys of every row of the shard and the
  fingerprints of the rows that have one (computed from the shard alone);
* ``merge(a, b)`` joins two states' chunks (cheap: no copy);
* ``finalize(state)`` stacks the chunks, orders them by key and decides (each filter's
  ``_resolve``); the result depends on the set of rows only, never on the order or grouping of
  the merges, so shards can be summarized anywhere, in any order;
* ``keep(shard)`` looks each row's key up in the decision.

The same decision can also be reached without gathering every fingerprint in one process (a
cluster executor's distributed stage): ``groups(state)`` turns a shard's fingerprints into
bucket rows (rows sharing a bucket are candidate duplicates; buckets can be shuffled by their
value), each bucket pairs its members with its smallest key, ``similarity`` verifies candidate
pairs (when ``verify_threshold`` says so), the connected components' smallest keys are the
representatives, and ``install`` hands each shard its part of the verdict. ``finalize`` is the
same algorithm in one process.

Rows are named by their keys (:mod:`prepflow.operators.common.keys`). What is held is keys and
fingerprints, never texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from prepflow.core.errors import OperatorContractError
from prepflow.core.operator import ID, FilterOperator
from prepflow.core.tables import from_numpy, strings
from prepflow.operators.common.keys import key_id, row_keys
from prepflow.operators.common.minhash import cluster_heads

CHUNK_ROWS = 8192  # rows fingerprinted at once: bounds the transient token and signature arrays


@dataclass
class DedupState:
    """Chunks of (keys of every row seen, keys of fingerprinted rows, their fingerprints).
    ``finalize`` consumes it (empties the lists as it stacks them, to bound peak memory)."""

    seen: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def __add__(self, other: DedupState) -> DedupState:
        return DedupState(
            self.seen + other.seen, self.keys + other.keys, self.values + other.values
        )


@dataclass(frozen=True)
class Verdict:
    """The rows to drop (sorted keys), the kept row each duplicates, and a similarity score."""

    dropped: np.ndarray
    representative: np.ndarray
    score: np.ndarray


class GlobalDedup(FilterOperator):
    """Base of the dedup filters: keys, the mergeable state, lookup and reasons."""

    abstract = True
    is_global = True
    cpu_heavy = True

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._seen: np.ndarray | None = None  # sorted keys of every summarized row
        self._verdict: Verdict | None = None

    # ---- the global protocol -----------------------------------------------------------------

    def summarize(self, batch: pa.Table) -> DedupState:
        keys = row_keys(batch.column(ID))
        if not len(keys):  # an empty shard may lack the columns upstream steps add
            return DedupState([keys])
        parts = [
            self._fingerprints(keys[i : i + CHUNK_ROWS], batch.slice(i, CHUNK_ROWS))
            for i in range(0, len(keys), CHUNK_ROWS)
        ]
        return DedupState([keys], [k for k, _ in parts], [v for _, v in parts])

    def merge(self, a: DedupState, b: DedupState) -> DedupState:
        return a + b

    def finalize(self, state: DedupState) -> None:
        seen = np.sort(np.concatenate([np.zeros(0, np.int64), *state.seen]))
        state.seen.clear()
        twice = seen[1:][seen[1:] == seen[:-1]]
        if len(twice):
            raise OperatorContractError(
                f"{self.name}: the row with _id {key_id(twice[0])} was summarized twice"
            )
        keys = np.concatenate([np.zeros(0, np.int64), *state.keys])
        state.keys.clear()
        values = _stack(state.values, self._empty_values())
        if len(keys) > 1 and (keys[1:] < keys[:-1]).any():
            order = np.argsort(keys)
            keys, values = keys[order], values[order]
        self._seen, self._verdict = seen, self._resolve(keys, values)

    def install(
        self, seen: np.ndarray, dropped: np.ndarray, representative: np.ndarray, score: np.ndarray
    ) -> None:
        """Take a decision reached elsewhere: ``seen`` the sorted keys of the rows this
        operator will be asked about, and (at least) their part of the verdict: the sorted keys
        of the rows to drop, each one's representative and score."""
        self._seen, self._verdict = seen, Verdict(dropped, representative, score)

    # ---- the distributed form of finalize (see the module docstring) -------------------------

    def groups(self, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Bucket rows of fingerprinted rows: a ``(rows, width)`` uint64 matrix whose row ``i``
        belongs to ``keys[i % len(keys)]``; equal rows are candidate duplicates. Default: the
        fingerprint itself (exact dedup)."""
        return values.astype(np.uint64, copy=False)

    @property
    def verify_threshold(self) -> float | None:
        """Candidate pairs whose :meth:`similarity` is below this are not duplicates; None:
        every candidate pair is one (and scores 1)."""
        return None

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The score of row pairs from their fingerprints (the reason shows it)."""
        return np.ones(len(a))

    def components(self, n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """For each of ``n`` nodes (numbered in key order), the smallest node connected to it
        through the edges ``(u, v)``: the representative of its cluster."""
        return cluster_heads(n, u, v)

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        if self._verdict is None or self._seen is None:
            raise OperatorContractError(
                f"{self.name} is a global operator: summarize() every batch "
                "and finalize() before run_batch()"
            )
        keys = row_keys(batch.column(ID))
        unseen = ~_lookup(self._seen, keys)[1]
        if unseen.any():
            raise OperatorContractError(
                f"{self.name}: the row with _id {key_id(keys[unseen][0])} was not summarized"
            )
        v = self._verdict
        at, drop = _lookup(v.dropped, keys)
        reasons: list[str | None] = [None] * len(keys)
        for row in np.flatnonzero(drop):
            j = at[row]
            reasons[row] = self._reason(key_id(v.representative[j]), float(v.score[j]))
        return from_numpy(~drop), strings(reasons)

    # ---- what each dedup implements ----------------------------------------------------------

    def _fingerprints(self, keys: np.ndarray, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(keys of the rows that have a fingerprint, one fingerprint row each); no state."""
        raise NotImplementedError

    def _empty_values(self) -> np.ndarray:
        """A fingerprint matrix with no rows (the dtype and width of this filter's)."""
        raise NotImplementedError

    def _resolve(self, keys: np.ndarray, values: np.ndarray) -> Verdict:
        """The verdict over every fingerprinted row, ``keys`` ascending."""
        raise NotImplementedError

    def _reason(self, representative_id: int, score: float) -> str:
        raise NotImplementedError


class DigestDedup(GlobalDedup):
    """Exact dedup: fingerprints are digests; of each group of equal digests the smallest key
    is kept."""

    abstract = True

    def _resolve(self, keys: np.ndarray, digests: np.ndarray) -> Verdict:
        order = np.lexsort([keys, *digests.T[::-1]])  # by digest, then key
        keys, digests = keys[order], digests[order]
        head = np.ones(len(keys), bool)
        head[1:] = (digests[1:] != digests[:-1]).any(axis=1)
        first = keys[np.maximum.accumulate(np.where(head, np.arange(len(keys)), 0))]
        dup = ~head
        by_key = np.argsort(keys[dup])
        return Verdict(keys[dup][by_key], first[dup][by_key], np.ones(int(dup.sum())))


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key sits in ``sorted_keys``, and whether it is there."""
    if not len(sorted_keys):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at, sorted_keys[at] == keys


def _stack(chunks: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    """Stack row blocks, releasing each as it is copied: peak memory is the result plus a block."""
    chunks = [c for c in chunks if len(c)]
    if not chunks:
        return empty
    out = np.empty((sum(len(c) for c in chunks), chunks[0].shape[1]), chunks[0].dtype)
    at = 0
    while chunks:
        block = chunks.pop(0)
        out[at : at + len(block)] = block
        at += len(block)
    return out
