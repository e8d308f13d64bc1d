"""Subsets of a dataset: a deterministic random sample, or the first n rows."""

from __future__ import annotations

import heapq

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.errors import OperatorContractError
from prepflow.core.operator import ID, FilterOperator, Params

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

    A global filter: the first pass keeps only the n smallest ids seen so far (memory bounded by
    n), the second keeps rows with those ids. The result does not depend on batch boundaries.
    When several rows share the cut-off ``_id`` (fan-out siblings), the first ones in stream
    order fill the remaining places. Dropped rows get the reason ``beyond the first n rows``.
    """

    is_global = True

    class Params(Params):
        n: int = Field(..., ge=1, description="number of rows to keep")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._smallest: list[int] = []  # max-heap (negated) of the n smallest ids observed
        self._cutoff: int | None = None  # the largest kept id; None keeps everything
        self._room_at_cutoff = 0  # rows with the cut-off id still to keep
        self._finalized = False

    def observe(self, batch: pa.Table) -> None:
        n = self.params.n
        ids = batch.column(ID)
        if len(self._smallest) == n:  # only ids below the current n-th smallest can enter
            ids = ids.filter(pc.less(ids, -self._smallest[0]))
        smallest = ids.take(pc.bottom_k_unstable(ids, min(n, len(ids))))
        for row_id in smallest.to_pylist():
            if len(self._smallest) < n:
                heapq.heappush(self._smallest, -row_id)
            elif row_id < -self._smallest[0]:
                heapq.heapreplace(self._smallest, -row_id)

    def finalize(self) -> None:
        self._finalized = True
        if len(self._smallest) == self.params.n:
            self._cutoff = -self._smallest[0]
            self._room_at_cutoff = self._smallest.count(-self._cutoff)

    def keep(self, batch: pa.Table) -> pa.Array | pa.ChunkedArray:
        if not self._finalized:
            raise OperatorContractError(f"{self.name}: run before observe() and finalize()")
        ids = batch.column(ID)
        if self._cutoff is None:
            return pa.repeat(pa.scalar(True), batch.num_rows)
        mask = pc.less(ids, self._cutoff)
        at_cutoff = pc.indices_nonzero(pc.equal(ids, self._cutoff)).to_pylist()
        if not at_cutoff or not self._room_at_cutoff:
            return mask
        flags = mask.to_pylist()
        for i in at_cutoff[: self._room_at_cutoff]:
            flags[i] = True
        self._room_at_cutoff -= min(len(at_cutoff), self._room_at_cutoff)
        return pa.array(flags, pa.bool_())

    def reason(self) -> str:
        return f"beyond the first {self.params.n} rows"
