"""Subsets of a dataset: a deterministic random sample, or the first n rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.errors import OperatorContractError
from prepflow.core.operator import ID, FilterOperator, Params
from prepflow.operators.common.keys import row_keys

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64_scalar(x: int) -> int:
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def splitmix64(values: pa.Array | pa.ChunkedArray, seed: int) -> pa.Array | pa.ChunkedArray:
    """SplitMix64 finaliser of ``values XOR mix(seed)``, vectorised over uint64 (wrapping)."""
    u64 = pa.uint64()

    def shift_xor(x: pa.Array, bits: int) -> pa.Array:
        return pc.bit_wise_xor(x, pc.shift_right(x, pa.scalar(bits, u64)))

    x = pc.bit_wise_xor(pc.cast(values, u64, safe=False), pa.scalar(_splitmix64_scalar(seed), u64))
    x = pc.add(x, pa.scalar(_GOLDEN, u64))
    x = pc.multiply(shift_xor(x, 30), pa.scalar(0xBF58476D1CE4E5B9, u64))
    x = pc.multiply(shift_xor(x, 27), pa.scalar(0x94D049BB133111EB, u64))
    return shift_xor(x, 31)


class Sample(FilterOperator):
    """Keep a deterministic pseudo-random fraction of the rows.

    Each row is kept when a 64-bit SplitMix64 hash of its ``_id`` and the ``seed`` falls below
    ``fraction`` of the hash range: the same input and seed always give the same sample, whatever
    the batch sizes or the number of workers, with no state and no pass over the whole dataset.
    Samples are nested: with one seed, the rows kept at fraction 0.1 are also kept at 0.5.
    Rows that share an ``_id`` (fan-out siblings) are kept or dropped together. Dropped rows get
    the reason ``not sampled``.
    """

    class Params(Params):
        fraction: float = Field(
            ..., gt=0, le=1, description="expected share of rows to keep (0, 1]"
        )
        seed: int = Field(0, description="change it to draw a different sample")

    def keep(self, batch: pa.Table) -> pa.Array | pa.ChunkedArray:
        # keep iff hash < fraction * 2**64, written as <= so that fraction 1 keeps every row
        limit = min(round(self.params.fraction * 2**64), 2**64) - 1
        return pc.less_equal(
            splitmix64(batch.column(ID), self.params.seed), pa.scalar(max(limit, 0), pa.uint64())
        )

    def reason(self) -> str:
        return "not sampled"


class Head(FilterOperator):
    """Keep the first ``n`` rows by ``_id`` (the n smallest ids); drop the rest.

    A mergeable global filter: each shard is summarized to the keys of its n first rows, two
    summaries merge to the n first of both (memory bounded by n), and each shard then keeps the
    rows among them. The result depends neither on batch boundaries nor on shard order. When
    several rows share the cut-off ``_id`` (fan-out siblings), the first ones in stream order
    fill the remaining places. Dropped rows get the reason ``beyond the first n rows``.
    """

    is_global = True

    class Params(Params):
        n: int = Field(..., ge=1, description="number of rows to keep")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._kept: np.ndarray | None = None  # sorted keys of the rows to keep

    def summarize(self, batch: pa.Table) -> np.ndarray:
        return self._first(row_keys(batch.column(ID)))

    def merge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._first(np.concatenate([a, b]))

    def finalize(self, state: np.ndarray) -> None:
        self._kept = np.sort(state)

    def keep(self, batch: pa.Table) -> pa.Array:
        if self._kept is None:
            raise OperatorContractError(f"{self.name}: run before summarize() and finalize()")
        keys = row_keys(batch.column(ID))
        return pa.array(np.isin(keys, self._kept))

    def _first(self, keys: np.ndarray) -> np.ndarray:
        n = self.params.n
        return keys if len(keys) <= n else np.partition(keys, n - 1)[:n]

    def reason(self) -> str:
        return f"beyond the first {self.params.n} rows"
