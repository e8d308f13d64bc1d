"""Exact deduplication over chosen columns, as a mergeable global filter."""

from __future__ import annotations

from hashlib import blake2b

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError
from prepflow.core.operator import Params
from prepflow.operators.common.dedup import DigestDedup

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


class ExactDedup(DigestDedup):
    """Drop rows whose chosen columns exactly equal those of a row with a smaller ``_id``.

    A mergeable global filter: each shard is summarized to one 16-byte BLAKE2b digest of the
    chosen columns per row (never the rows themselves); of every group of equal digests the row
    with the smallest ``_id`` is kept and the others are dropped with the reason ``duplicate of
    _id N``. The result therefore depends neither on how the data is split into shards nor on
    their order.

    Values are compared exactly (no case or whitespace folding: put a refine step first for
    that, or use ``TextExactDedup``); a null equals a null. Rows that share an ``_id`` (siblings
    from a fan-out step, such as identical chunks of one document) are ordered by their place in
    the stream: the first one is kept.
    """

    cpu_heavy = False

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

    def required_inputs(self) -> list[Column]:
        return [Column(c, "any", "compared for duplicates") for c in self.params.columns]

    def _fingerprints(self, keys: np.ndarray, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        missing = [c for c in self.params.columns if c not in rows.column_names]
        if missing:
            raise ConfigError(
                f"{self.name}: no column(s) {', '.join(map(repr, missing))} in the data"
            )
        raw = b"".join(row_digests(rows, self.params.columns))
        return keys, np.frombuffer(raw, np.uint64).reshape(-1, _DIGEST_BYTES // 8)

    def _empty_values(self) -> np.ndarray:
        return np.zeros((0, _DIGEST_BYTES // 8), np.uint64)

    def _reason(self, representative_id: int, score: float) -> str:
        return f"duplicate of _id {representative_id}"
