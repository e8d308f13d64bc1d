"""KenLM perplexity: score documents with an n-gram model, or filter on the score.

Train a model on reference text with ``prepflow lm train`` (no pretrained model is bundled);
low perplexity means the document reads like the reference (CCNet's quality signal).
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import EvaluateOperator, FilterOperator, Params, Requirements
from prepflow.core.tables import from_numpy, set_column, strings
from prepflow.operators.text.language_model import load_model, perplexity

_KENLM = Requirements(packages=("kenlm",), extra="text")


class _LmParams(Params):
    model: str = Field(
        ...,
        description="Path to a KenLM model (ARPA or KenLM binary), e.g. from `prepflow lm train`.",
    )


class PerplexityScore(EvaluateOperator):
    """Add each document's perplexity under a KenLM n-gram model.

    Lines are scored as sentences after the normalisation used in training (lower case, digits
    as 0, CJK-aware words); the document's perplexity is 10^(-sum log10 P / tokens). Documents
    without words get NaN.
    """

    domain = "text"
    cpu_heavy = True
    requires = _KENLM
    inputs = (Column("text", "string", "Document text."),)
    outputs = (Column("perplexity", "float", "Perplexity under the model (NaN without words)."),)
    Params = _LmParams

    def check(self) -> list[str]:
        return _check_model(self)

    def process(self, batch: pa.Table) -> pa.Table:
        scores = perplexity(
            load_model(self.params.model), batch.column(self.col("text")).combine_chunks()
        )
        return set_column(batch, self.col("perplexity"), from_numpy(scores))


class PerplexityFilter(FilterOperator):
    """Keep documents whose KenLM perplexity is at most ``max_perplexity``.

    Same scoring as ``PerplexityScore``; documents without words are dropped. CCNet splits
    its corpus into thirds by perplexity: pick the threshold from the scores of a sample.
    """

    domain = "text"
    cpu_heavy = True
    requires = _KENLM
    inputs = (Column("text", "string", "Document text."),)

    class Params(_LmParams):
        max_perplexity: float = Field(..., gt=0, description="Highest perplexity kept.")

    def check(self) -> list[str]:
        return _check_model(self)

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        scores = perplexity(
            load_model(self.params.model), batch.column(self.col("text")).combine_chunks()
        )
        keep = scores <= self.params.max_perplexity  # NaN (no words) is not kept
        limit = self.params.max_perplexity
        reasons = [
            None
            if k
            else "max_perplexity: no words"
            if math.isnan(s)
            else f"max_perplexity: perplexity={s:.4g} > {limit:g}"
            for k, s in zip(keep.tolist(), scores.tolist(), strict=True)
        ]
        return from_numpy(keep), strings(reasons)


def _check_model(op: EvaluateOperator | FilterOperator) -> list[str]:
    path = op.params.model
    return [] if Path(path).is_file() else [f"{op.name}: parameter 'model': no such file {path!r}"]
