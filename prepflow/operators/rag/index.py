"""Building the search index over all chunks (a global step) and measuring retrieval recall."""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.errors import OperatorContractError
from prepflow.core.operator import EvaluateOperator, Params, Requirements
from prepflow.operators.rag._index import build_index, load_index

INDEX_REQUIRES = Requirements(packages=("bm25s",), extra="rag")


class IndexParams(Params):
    index_dir: str = Field(
        description="directory of the search index (written by BuildSearchIndex)"
    )


class BuildSearchIndex(EvaluateOperator):
    """Indexes every chunk of the dataset for search (BM25, and dense when an ``embedding``
    column is present), writing the index to ``index_dir``; rows pass through unchanged.

    A global step: each shard is summarized to plain ``(chunk_id, doc_id, text, embedding)``
    records, the summaries are merged, and ``finalize`` sorts them by chunk id and writes the
    index, so the index is the same however the data was cut into shards or in which order they
    arrived. Later steps (multi-hop questions, trajectories, their verification) search it.
    An existing ``index_dir`` is replaced only when prepflow wrote it.
    """

    domain = "rag"
    is_global = True
    requires = INDEX_REQUIRES
    inputs = (
        Column("chunk_id", "string", "the chunk's unique id"),
        Column("chunk", "string", "the chunk's text"),
        Column("doc_id", "string", "the chunk's document"),
        Column("embedding", "list<float>", "the chunk's embedding (dense search)", optional=True),
    )

    Params = IndexParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._built = False

    def summarize(self, batch: pa.Table) -> list[dict[str, Any]]:
        names = {"chunk_id": "chunk_id", "text": "chunk", "doc_id": "doc_id"}
        columns = {k: batch.column(self.col(v)).to_pylist() for k, v in names.items()}
        emb = self.col("embedding")
        columns["embedding"] = (
            batch.column(emb).to_pylist() if emb in batch.column_names else [None] * batch.num_rows
        )
        return [
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        ]

    def merge(self, a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return a + b

    def finalize(self, state: list[dict[str, Any]]) -> None:
        build_index(state).save(self.params.index_dir)
        self._built = True

    def process(self, batch: pa.Table) -> pa.Table:
        if not self._built:
            raise OperatorContractError(f"{self.name} is global: finalize() before run_batch()")
        return batch


class RetrievalRecall(EvaluateOperator):
    """Recall@k of the evidence chunks when the question is searched (BM25) in the index.

    Writes ``recall_at_k``: the share of ``evidence_ids`` among the top ``k`` results, which
    says whether the index finds what a question needs (1.0: every evidence chunk found).
    """

    domain = "rag"
    requires = INDEX_REQUIRES
    inputs = (
        Column("question", "string", "the query"),
        Column("evidence_ids", "list<string>", "the chunks that hold the answer"),
    )
    outputs = (Column("recall_at_k", "float", "share of evidence chunks in the top k"),)

    class Params(IndexParams):
        k: int = Field(5, ge=1, description="results searched")
        mode: Literal["bm25"] = Field("bm25", description="search method")

    def process(self, batch: pa.Table) -> pa.Table:
        index = load_index(self.params.index_dir)
        questions = batch.column(self.col("question")).to_pylist()
        evidence = batch.column(self.col("evidence_ids")).to_pylist()
        scores = []
        for q, ids in zip(questions, evidence, strict=True):
            if not q or not ids:
                scores.append(None)
                continue
            found = {h.chunk_id for h in index.search(q, self.params.k)}
            scores.append(len(found & set(ids)) / len(set(ids)))
        return batch.append_column(self.col("recall_at_k"), pa.array(scores, pa.float64()))
