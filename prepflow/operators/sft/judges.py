"""LLM judging of instruction/response pairs: quality (AlpaGasus), complexity, weak-answer rewrite."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams, reply_text
from prepflow.core.operator import FilterOperator, Kind, Params
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.common.llm import (
    JUDGE_SYSTEM,
    MAX_REASON_CHARS,
    JudgeEvaluator,
    JudgeParams,
)

QUALITY_PROMPT = """\
Rate the response of an AI assistant to the instruction below for {{ criteria }}.

Instruction:
{{ instruction }}

Response:
{{ response }}

Give a short rationale (one or two sentences, avoiding any bias from length or style), then a \
score from {{ min_score }} (worst) to {{ max_score }} (best). Reply with only a JSON object: \
{"rationale": "...", "score": <number>}"""

COMPLEXITY_PROMPT = """\
Rate how complex the following instruction is to carry out: how many constraints and steps it \
has, how much reasoning and domain knowledge it needs.

Instruction:
{{ instruction }}

Give a short rationale (one or two sentences), then a score from {{ min_score }} (trivial) to \
{{ max_score }} (very demanding). Reply with only a JSON object: \
{"rationale": "...", "score": <number>}"""

REWRITE_SYSTEM = "You improve answers of an AI assistant."
REWRITE_PROMPT = """\
The response below to the instruction was judged weak (score {{ score }}). The judge said: \
{{ rationale }}

Instruction:
{{ instruction }}

Response:
{{ response }}

Write an improved response that fixes these problems and fully answers the instruction. Reply \
with only the improved response."""


class QualityJudge(JudgeEvaluator):
    """Scores each instruction/response pair with an LLM judge, with a rationale (AlpaGasus).

    Writes ``score`` (on ``min_score``..``max_score``, default 1-5; fractional scores such as
    4.5 are allowed, as in AlpaGasus) and ``rationale``. The answer is structured output,
    validated against the scale and re-asked when invalid. Follow with
    :class:`QualityScoreFilter` to keep the good pairs. Re-judging a pair that did not change
    costs nothing: the request is served from the response cache.
    """

    domain = "sft"
    inputs = (
        Column("instruction", "string", "the task"),
        Column("response", "string", "the answer being judged"),
    )
    template = PromptTemplate(QUALITY_PROMPT, JUDGE_SYSTEM)

    class Params(JudgeParams):
        criteria: str = Field(
            "accuracy and helpfulness: does it correctly and fully do what the instruction asks",
            description="what to judge, in words (the prompt's {{ criteria }})",
        )


class ComplexityScorer(JudgeEvaluator):
    """Scores how demanding each instruction is, with a rationale (Deita-style complexity).

    Writes ``complexity`` (default scale 1-5, 1 trivial) and ``complexity_rationale``; use it to
    balance a dataset or to keep only demanding instructions (``ExpressionFilter``).
    """

    domain = "sft"
    inputs = (Column("instruction", "string", "the instruction to rate"),)
    outputs = (
        Column("complexity", "float", "how demanding the instruction is"),
        Column("complexity_rationale", "string", "why the judge gave that complexity"),
    )
    template = PromptTemplate(COMPLEXITY_PROMPT, JUDGE_SYSTEM)

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {
            "complexity": response.parsed.score,
            "complexity_rationale": response.parsed.rationale,
        }


class QualityScoreFilter(FilterOperator):
    """Keeps rows whose judge score is at least ``min_score``; the reason names score and rationale.

    The threshold step of AlpaGasus (which kept pairs scored 4.5 of 5): reads the ``score`` and
    ``rationale`` written by :class:`QualityJudge`. A row without a score is dropped as such.
    """

    domain = "sft"
    inputs = (
        Column("score", "float", "the judge's score"),
        Column("rationale", "string", "the judge's rationale", optional=True),
    )

    class Params(Params):
        min_score: float = Field(4.0, description="keep rows scored at least this")

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        scores = batch.column(self.col("score")).to_pylist()
        name = self.col("rationale")
        rationales = (
            batch.column(name).to_pylist() if name in batch.column_names else [None] * len(scores)
        )
        mask, reasons = [], []
        for score, why in zip(scores, rationales, strict=True):
            keep = score is not None and score >= self.params.min_score
            mask.append(keep)
            if keep:
                reasons.append(None)
            elif score is None:
                reasons.append("min_score: no quality score")
            else:
                text = f"min_score: score={score:g} < {self.params.min_score:g}"
                reasons.append((f"{text}; {why}" if why else text)[:MAX_REASON_CHARS])
        return pa.array(mask, pa.bool_()), pa.array(reasons, pa.string())


class ResponseRewriter(LLMOperator):
    """Rewrites responses the judge scored below ``below``, using the judge's rationale.

    Rows scored at least ``below`` pass unchanged without a request. The rewritten response
    replaces ``response`` in place; judge again afterwards (unchanged pairs come from the cache)
    and filter, so a rewrite that is still weak does not slip through.
    """

    domain = "sft"
    kind = Kind.REFINE
    inputs = (
        Column("instruction", "string", "the task"),
        Column("response", "string", "the answer, rewritten when weak"),
        Column("score", "float", "the judge's score"),
        Column("rationale", "string", "the judge's rationale, shown to the rewriter"),
    )
    outputs = (Column("response", "string", "the (possibly rewritten) answer"),)
    template = PromptTemplate(REWRITE_PROMPT, REWRITE_SYSTEM)

    class Params(LLMParams):
        below: float = Field(4.0, description="rewrite responses scored below this")

    async def arun_row(self, row: dict[str, Any]) -> Any:
        for name in ("score", "response"):
            if row.get(self.col(name)) is None:
                raise ValueError(f"column {self.col(name)!r} is null")
        if row[self.col("score")] >= self.params.below:  # no model answer to parse or forget
            return self.check_output(self.parse(row, None))
        return await super().arun_row(row)

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        if response is None:  # not weak: kept as it is
            return {"response": row[self.col("response")]}
        return {"response": reply_text(response.text)}
