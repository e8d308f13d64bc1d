"""Diversity selection: embed a text column, then keep a k-center greedy subset of the rows."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.operator import (
    ID,
    FilterOperator,
    GenerateOperator,
    Params,
    Requirements,
    Result,
    failure_rows,
)


class EmbedText(GenerateOperator):
    """Embeds a text column with the serving layer's embedding model into ``embedding``.

    One ``/embeddings`` request per chunk of texts (the client batches and caches each text), so
    re-running costs nothing. A null text, or a batch the server keeps refusing, becomes failure
    records, never a null vector. The model is ``serving.embedding_model`` (default: ``model``).
    """

    domain = "sft"
    is_async = True
    requires = Requirements(llm=True, embedding=True)
    inputs = (Column("text", "string", "the text to embed"),)
    outputs = (Column("embedding", "list<float>", "the text's embedding vector"),)

    def setup(self, ctx: Any) -> None:
        self._serving = getattr(ctx, "serving", None)
        if self._serving is None:
            raise ConfigError(
                f"{self.name} needs serving: add a 'serving:' section to the pipeline"
            )

    def run_batch(self, batch: pa.Table) -> Result:
        raise OperatorContractError(f"{self.name} is async: await arun_batch")

    async def arun_batch(self, batch: pa.Table) -> Result:
        texts = batch.column(self.col("text")).to_pylist()
        ok = [i for i, t in enumerate(texts) if t is not None]
        null = [i for i, t in enumerate(texts) if t is None]
        failed = (
            failure_rows(_take(batch, null), "NullInput", f"column {self.col('text')!r} is null")
            if null
            else None
        )
        good = _take(batch, ok)
        try:
            vectors = await self._serving.embed([texts[i] for i in ok]) if ok else []
        except Exception as e:
            error = failure_rows(
                good,
                getattr(e, "error_type", None) or type(e).__name__,
                str(e),
                getattr(e, "attempts", 0),
            )
            failed = error if failed is None else pa.concat_tables([failed, error])
            good, vectors = _take(batch, []), []
        column = pa.array(vectors, pa.list_(pa.float32()))
        name = self.col("embedding")
        if name in good.column_names:
            good = good.set_column(good.column_names.index(name), name, column)
        else:
            good = good.append_column(name, column)
        return Result(kept=good, failed=failed)


class KCenterSelect(FilterOperator):
    """Keeps a diverse subset of rows: greedy k-center over an embedding column.

    A global filter. The first pass keeps one float32 vector per row; ``finalize`` starts from
    the first row and repeatedly selects the row farthest from everything selected so far (the
    greedy 2-approximation of k-center: the selection covers the data with the smallest
    radius). Unselected rows are dropped with the reason ``not selected (nearest selected _id N,
    distance D)``. Selection stops early when every remaining row coincides with a selected
    one. Set exactly one of ``k`` (rows) and ``fraction`` (of the rows seen).
    """

    domain = "sft"
    is_global = True
    inputs = (Column("embedding", "list<float>", "the row's embedding (e.g. from EmbedText)"),)

    class Params(Params):
        k: int | None = Field(None, ge=1, description="number of rows to keep")
        fraction: float | None = Field(
            None, gt=0, le=1, description="share of the rows to keep (rounded up)"
        )
        metric: Literal["cosine", "euclidean"] = Field(
            "cosine", description="distance between embeddings"
        )

        @model_validator(mode="after")
        def _one_size(self) -> KCenterSelect.Params:
            if (self.k is None) == (self.fraction is None):
                raise ValueError("set exactly one of 'k' and 'fraction'")
            return self

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._keys: list[tuple[int, int]] = []  # (_id, occurrence of that _id) per observed row
        self._seen: dict[int, int] = {}
        self._vectors: list[np.ndarray] = []
        self._choice: dict[tuple[int, int], tuple[bool, int, float]] = {}

    def _row_keys(self, batch: pa.Table) -> list[tuple[int, int]]:
        keys = []
        for row_id in batch.column(ID).to_pylist():
            n = self._seen.get(row_id, 0)
            self._seen[row_id] = n + 1
            keys.append((row_id, n))
        return keys

    def observe(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:  # an empty shard may lack columns upstream steps add
            return
        name = self.col("embedding")
        keys = self._row_keys(batch)
        for key, vector in zip(keys, batch.column(name).to_pylist(), strict=True):
            if not vector:
                raise ConfigError(f"{self.name}: row _id {key[0]} has no {name!r} vector")
            if self._vectors and len(vector) != len(self._vectors[0]):
                raise ConfigError(
                    f"{self.name}: row _id {key[0]} has a {len(vector)}-dim {name!r}, "
                    f"earlier rows {len(self._vectors[0])}-dim"
                )
            self._vectors.append(np.asarray(vector, np.float32))
        self._keys.extend(keys)

    def finalize(self) -> None:
        n = len(self._keys)
        self._seen.clear()  # the output pass counts occurrences afresh
        if n == 0:
            return
        k = self.params.k or math.ceil(self.params.fraction * n)
        x = np.vstack(self._vectors)
        self._vectors.clear()
        if self.params.metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            if (zero := np.flatnonzero(norms[:, 0] == 0)).size:
                raise ConfigError(
                    f"{self.name}: row _id {self._keys[zero[0]][0]} has a zero vector "
                    "(no cosine distance); use metric: euclidean"
                )
            x /= norms
        selected, nearest, dist = k_center_greedy(x, k, self.params.metric)
        chosen = set(selected)
        self._choice = {
            key: (i in chosen, self._keys[selected[nearest[i]]][0], float(dist[i]))
            for i, key in enumerate(self._keys)
        }

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        mask, reasons = [], []
        for key in self._row_keys(batch) if batch.num_rows else []:
            if key not in self._choice:
                raise OperatorContractError(
                    f"{self.name}: row _id {key[0]} was not observed; "
                    "a global operator must observe every batch first"
                )
            keep, near, distance = self._choice[key]
            mask.append(keep)
            reasons.append(
                None
                if keep
                else f"not selected (nearest selected _id {near}, distance {distance:.3g})"
            )
        return pa.array(mask, pa.bool_()), pa.array(reasons, pa.string())


def k_center_greedy(x: np.ndarray, k: int, metric: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Greedy k-center from row 0: (selected rows, index into selected of each row's nearest
    center, distance to it). ``cosine`` expects unit rows. Ties go to the lowest row."""

    def distance(i: int) -> np.ndarray:
        if metric == "cosine":
            return np.clip(1.0 - x @ x[i], 0.0, 2.0)
        return np.linalg.norm(x - x[i], axis=1)

    selected = [0]
    dist = distance(0)
    nearest = np.zeros(len(x), np.int64)
    while len(selected) < k:
        i = int(np.argmax(dist))
        if dist[i] <= 0:
            break
        selected.append(i)
        d = distance(i)
        closer = d < dist
        nearest[closer] = len(selected) - 1
        dist = np.minimum(dist, d)
    return selected, nearest, dist


def _take(batch: pa.Table, rows: list[int]) -> pa.Table:
    return batch.take(pa.array(rows, pa.int64()))
