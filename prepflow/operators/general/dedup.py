"""Exact deduplication over chosen columns, as a global two-pass filter."""

from __future__ import annotations

from hashlib import blake2b

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.operator import ID, FilterOperator, Params

_DIGEST_BYTES = 16  # 128-bit: collisions are out of reach even at billions of rows
_NULL = blake2b(b"", digest_size=_DIGEST_BYTES, person=b"prepflow.null").digest()


def _as_bytes(values: pa.ChunkedArray) -> list[bytes | None]:
    """One canonical byte string per value (None for null), by the column's Arrow type."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return values.cast(pa.binary()).to_pylist()
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return values.cast(pa.large_binary()).to_pylist()
    if pa.types.is_null(t):
        return [None] * len(values)
    if pa.types.is_nested(t):  # lists, structs, maps: their JSON form
        return [None if v is None else orjson.dumps(v, default=str) for v in values.to_pylist()]
    return pc.cast(values, pa.string()).cast(pa.binary()).to_pylist()  # numbers, bools, dates


def row_digests(batch: pa.Table, columns: list[str]) -> list[bytes]:
    """A 128-bit BLAKE2b digest of each row's values in ``columns``.

    With several columns each value is framed as a null marker or a length-prefixed byte string,
    so ('ab', 'c') and ('a', 'bc') differ. A single column needs no framing: its null gets a
    digest of its own (a differently personalised BLAKE2b), so null and '' differ too.
    """
    encoded = [_as_bytes(batch.column(c)) for c in columns]
    if len(encoded) == 1:
        return [
            _NULL if v is None else blake2b(v, digest_size=_DIGEST_BYTES).digest()
            for v in encoded[0]
        ]
    digests = []
    for values in zip(*encoded, strict=True):
        h = blake2b(digest_size=_DIGEST_BYTES)
        for v in values:
            if v is None:
                h.update(b"\x00")
            else:
                h.update(b"\x01" + len(v).to_bytes(8, "little"))
                h.update(v)
        digests.append(h.digest())
    return digests


class ExactDedup(FilterOperator):
    """Drop rows whose chosen columns exactly equal those of an earlier row.

    A global filter in two passes: the first pass records, for each distinct combination of the
    chosen columns' values, the smallest ``_id`` that has it; the second keeps the row with that
    ``_id`` and drops the others with the reason ``duplicate of _id N``. The result therefore
    does not depend on how the data is split into batches. State is one 16-byte BLAKE2b digest
    and one id per distinct row, never the rows themselves.

    Values are compared exactly (no case or whitespace folding: put a refine step first for
    that); a null equals a null. Rows that share an ``_id`` (siblings from a fan-out step, such
    as identical chunks of one document) are tie-broken by stream order: the first one seen in
    the second pass is kept.
    """

    is_global = True

    class Params(Params):
        columns: list[str] = Field(
            ["text"], min_length=1, description="columns whose values together define a duplicate"
        )

        @field_validator("columns")
        @classmethod
        def _distinct(cls, v: list[str]) -> list[str]:
            if len(set(v)) != len(v):
                raise ValueError("a column is listed more than once")
            return v

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._first: dict[bytes, int] = {}  # digest -> smallest _id with these values
        self._tied: set[bytes] = set()  # digests whose smallest _id occurs on several rows
        self._emitted: set[bytes] = set()  # of the tied digests, those already kept

    def required_inputs(self) -> list[Column]:
        return [Column(c, "any", "compared for duplicates") for c in self.params.columns]

    def _digests(self, batch: pa.Table) -> list[bytes]:
        missing = [c for c in self.params.columns if c not in batch.column_names]
        if missing:
            raise ConfigError(
                f"{self.name}: no column(s) {', '.join(map(repr, missing))} in the data"
            )
        return row_digests(batch, self.params.columns)

    def observe(self, batch: pa.Table) -> None:
        first, tied = self._first, self._tied
        for digest, row_id in zip(self._digests(batch), batch.column(ID).to_pylist(), strict=True):
            prior = first.get(digest)
            if prior is None or row_id < prior:
                first[digest] = row_id
                tied.discard(digest)
            elif row_id == prior:
                tied.add(digest)

    def finalize(self) -> None:
        self._emitted.clear()  # the output pass starts: no tied row has been kept yet

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        mask, reasons = [], []
        for digest, row_id in zip(self._digests(batch), batch.column(ID).to_pylist(), strict=True):
            first = self._first.get(digest)
            if first is None:
                raise OperatorContractError(
                    f"{self.name}: row with _id {row_id} was not observed; "
                    "a global operator must observe every batch first"
                )
            keep = row_id == first and digest not in self._emitted
            if keep and digest in self._tied:
                self._emitted.add(digest)
            mask.append(keep)
            reasons.append(None if keep else f"duplicate of _id {first}")
        return pa.array(mask, pa.bool_()), pa.array(reasons, pa.string())
