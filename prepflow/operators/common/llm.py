"""LLM operator bases shared by the domains: a judge with a rationale and a bounded score (as an
evaluator or a filter), and a generator that fans each row out into several."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, create_model

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError
from prepflow.core.llm import LLMOperator, LLMParams, reply_text
from prepflow.core.operator import Kind
from prepflow.core.prompts import PromptTemplate

JUDGE_SYSTEM = "You are a careful and strict judge of data quality."
JUDGE_PROMPT = """\
Judge the following text for {{ criteria }}.

Text:
{{ text }}

Give a short rationale (one or two sentences), then a score from {{ min_score }} (worst) to \
{{ max_score }} (best). Reply with only a JSON object: {"rationale": "...", "score": <number>}"""

MAX_REASON_CHARS = 300
#: The smallest embedded catalog model that judges clearly better than chance on the labelled
#: judge set (benchmarks/README.md, "Judges"): the 0.5B default scored nearly everything 4-5
#: (balanced accuracy 0.47). Judges run with it when the pipeline launches the embedded default.
JUDGE_MODEL = "qwen2.5-coder-1.5b-instruct"


def _not_a_bool(value: Any) -> Any:
    """A JSON ``true``/``false`` is not a score (pydantic would read it as 1.0/0.0)."""
    if isinstance(value, bool):
        raise ValueError("the score must be a number, not true/false")
    return value


#: A judge's score: a number (a numeric string is read as one); never a bool. A reply without a
#: valid score is re-asked and then fails the row: it never becomes a default or a top score.
Score = Annotated[float, BeforeValidator(_not_a_bool)]


class JudgeParams(LLMParams):
    criteria: str = Field(
        "overall quality: correctness, clarity and usefulness",
        description="what to judge, in words (the default prompt's {{ criteria }})",
    )
    min_score: int = Field(1, description="lowest score on the scale")
    max_score: int = Field(5, description="highest score on the scale")


class Judge(LLMOperator):
    """Shared by the evaluator and the filter: a rationale and a bounded score per row."""

    abstract = True
    inputs = (
        Column("text", "string", "what is judged (read by the default prompt)", optional=True),
    )
    template = PromptTemplate(JUDGE_PROMPT, JUDGE_SYSTEM)
    Params = JudgeParams
    max_tokens = 256  # a score and one or two sentences
    preferred_embedded_model = JUDGE_MODEL

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        lo, hi = self.params.min_score, self.params.max_score
        if lo >= hi:
            raise ConfigError(f"{self.name}: min_score ({lo}) must be below max_score ({hi})")
        self.schema = create_model(
            "Judgement",
            rationale=(str, Field(description="why this score, in one or two sentences")),
            score=(Score, Field(ge=lo, le=hi, description=f"from {lo} (worst) to {hi} (best)")),
        )


class JudgeEvaluator(Judge):
    """A judge that adds ``score`` and ``rationale`` columns."""

    abstract = True
    kind = Kind.EVALUATE
    outputs = (
        Column("score", "float", "the judge's score"),
        Column("rationale", "string", "why the judge gave that score"),
    )

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"score": response.parsed.score, "rationale": response.parsed.rationale}


class JudgeFilter(Judge):
    """A judge that keeps rows scored at least ``threshold``; the reason is score and rationale."""

    abstract = True
    kind = Kind.FILTER

    class Params(JudgeParams):
        threshold: float = Field(3, description="keep rows whose score is at least this")

    def check(self) -> list[str]:
        p = self.params
        if not p.min_score <= p.threshold <= p.max_score:
            return [
                f"{self.name}: threshold {p.threshold:g} is outside the scale "
                f"[{p.min_score}, {p.max_score}]"
            ]
        return super().check()

    def parse(self, row: dict[str, Any], response: Any) -> tuple[bool, str]:
        score, threshold = response.parsed.score, self.params.threshold
        reason = f"threshold: score={score:g} < {threshold:g}; {response.parsed.rationale}"
        return score >= threshold, reason[:MAX_REASON_CHARS]


class FanOutGenerator(LLMOperator):
    """Generates ``n`` rows from each row: one JSON list request, or ``n`` seeded samples."""

    abstract = True
    kind = Kind.GENERATE
    outputs = (Column("generated", "string", "one generated item"),)
    template_variables = ("index",)

    class Params(LLMParams):
        prompt: str = Field(
            ...,
            description="Jinja2 template of the user message, e.g. 'Write "
            "{{ n }} questions about: {{ text }}'",
        )
        n: int = Field(3, ge=1, le=100, description="rows generated per input row")
        mode: Literal["list", "samples"] = Field(
            "list", description="list: one request for a JSON list of n items; samples: n requests"
        )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        n = self.params.n
        if self.params.mode == "list":
            self.schema = create_model(
                "Items",
                items=(
                    list[str],
                    Field(min_length=n, max_length=n, description=f"exactly {n} items"),
                ),
            )

    @property
    def requests_per_row(self) -> int:
        return self.params.n if self.params.mode == "samples" else 1

    def max_rows_out(self, rows_in: int) -> int:
        return rows_in * self.params.n

    async def arun_row(self, row: dict[str, Any]) -> Any:
        if self.params.mode == "list":
            return await super().arun_row(row)
        assert self.prompt_template is not None
        seed = int(self.params.generation.get("seed", 0))
        context = self.context(row)
        replies = await asyncio.gather(
            *(
                self.chat(self.prompt_template.messages(**context, index=i), seed=seed + i)
                for i in range(self.params.n)
            ),
            return_exceptions=True,
        )
        if errors := [r for r in replies if isinstance(r, BaseException)]:
            raise errors[0]
        return [child for reply in replies for child in self.checked_parse(row, reply)]

    def parse(self, row: dict[str, Any], response: Any) -> list[dict[str, Any]]:
        items = response.parsed.items if self.schema is not None else [response.text]
        return [{"generated": reply_text(item)} for item in items]
