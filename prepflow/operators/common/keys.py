"""Row keys: one sortable int64 per row that orders rows like the stream does.

A key is the row's ``_id`` shifted left plus its rank among the rows of its shard that share the
``_id`` (fan-out siblings, which always sit in one shard). Global operators break ties by key, never
by arrival order, so their decisions do not depend on how shards are scheduled.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from prepflow.core.errors import OperatorContractError
from prepflow.core.tables import to_numpy

_RANK_BITS = 20
_MAX_ID = 1 << (63 - _RANK_BITS)


def row_keys(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """One int64 key per row, increasing with ``_id`` and, among siblings, with batch order."""
    ids = np.asarray(to_numpy(ids), dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= _MAX_ID):
        raise OperatorContractError(
            f"_id values must lie in [0, 2**{63 - _RANK_BITS}); got {ids.min()}..{ids.max()}"
        )
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    pos = np.arange(len(ids))
    head = np.ones(len(ids), bool)
    head[1:] = ordered[1:] != ordered[:-1]
    rank = pos - np.maximum.accumulate(np.where(head, pos, 0))
    if len(rank) and rank.max() >= 1 << _RANK_BITS:
        raise OperatorContractError(f"more than {1 << _RANK_BITS} rows share one _id in a batch")
    keys = np.empty_like(ids)
    keys[order] = (ordered << _RANK_BITS) | rank
    return keys


def key_id(key: int) -> int:
    """The ``_id`` of a row key."""
    return int(key) >> _RANK_BITS
