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
from prepflow.core.tables import set_column, take_rows
from prepflow.operators.common.keys import key_id, row_keys


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
            failure_rows(
                take_rows(batch, null), "NullInput", f"column {self.col('text')!r} is null"
            )
            if null
            else None
        )
        good = take_rows(batch, ok)
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
            good, vectors = take_rows(batch, []), []
        good = set_column(good, self.col("embedding"), pa.array(vectors, pa.list_(pa.float32())))
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
        self._choice: dict[int, tuple[bool, int, float]] | None = None  # row key -> verdict

    def summarize(self, batch: pa.Table) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(row keys, float32 vectors)] of the shard (none for an empty shard: it may lack the
        columns upstream steps add)."""
        if batch.num_rows == 0:
            return []
        name = self.col("embedding")
        keys = row_keys(batch.column(ID))
        vectors = batch.column(name).to_pylist()
        dim = len(vectors[0] or ())
        for key, vector in zip(keys, vectors, strict=True):
            if not vector:
                raise ConfigError(f"{self.name}: row _id {key_id(key)} has no {name!r} vector")
            if len(vector) != dim:
                raise ConfigError(
                    f"{self.name}: row _id {key_id(key)} has a {len(vector)}-dim {name!r}, "
                    f"earlier rows {dim}-dim"
                )
        return [(keys, np.asarray(vectors, np.float32))]

    def merge(
        self, a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        dims = {v.shape[1] for _, v in a + b}
        if len(dims) > 1:
            raise ConfigError(f"{self.name}: shards hold embeddings of {sorted(dims)} dimensions")
        return a + b

    def finalize(self, state: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self._choice = {}
        if not state:
            return
        keys = np.concatenate([k for k, _ in state])
        order = np.argsort(keys)  # stream order: selection starts from the first row
        keys = keys[order]
        x = np.vstack([v for _, v in state])[order]
        state.clear()
        n = len(keys)
        k = self.params.k or math.ceil(self.params.fraction * n)
        if self.params.metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            if (zero := np.flatnonzero(norms[:, 0] == 0)).size:
                raise ConfigError(
                    f"{self.name}: row _id {key_id(keys[zero[0]])} has a zero vector "
                    "(no cosine distance); use metric: euclidean"
                )
            x /= norms
        selected, nearest, dist = k_center_greedy(x, k, self.params.metric)
        chosen = set(selected)
        self._choice = {
            int(key): (i in chosen, key_id(keys[selected[nearest[i]]]), float(dist[i]))
            for i, key in enumerate(keys)
        }

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        if self._choice is None:
            raise OperatorContractError(f"{self.name}: run before summarize() and finalize()")
        mask, reasons = [], []
        for key in row_keys(batch.column(ID)).tolist() if batch.num_rows else []:
            if key not in self._choice:
                raise OperatorContractError(
                    f"{self.name}: row _id {key_id(key)} was not summarized; "
                    "a global operator must summarize every batch first"
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
