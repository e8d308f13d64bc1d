"""Generic LLM operators, configured from YAML with prompt templates over any columns."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field, create_model

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError
from prepflow.core.llm import LLMOperator, LLMParams, fields_model, reply_text
from prepflow.core.operator import Kind
from prepflow.core.prompts import PromptTemplate

JUDGE_SYSTEM = "You are a careful and strict judge of data quality."
JUDGE_PROMPT = """\
Judge the following text for {{ criteria }}.

Text:
{{ text }}

Give a short rationale (one or two sentences), then a score from {{ min_score }} (worst) to \
{{ max_score }} (best). Reply with only a JSON object: {"rationale": "...", "score": <number>}"""

REFINE_PROMPT = """\
{{ instruction }}

Reply with only the rewritten text, without comments or quotes.

Text:
{{ text }}"""

MAX_REASON_CHARS = 300


class PromptedGenerator(LLMOperator):
    """Writes a new column from a prompt template over each row.

    The prompt is a Jinja2 template that reads any column, e.g. ``"Summarize: {{ text }}"``; the
    reply goes to the ``generated`` output (bind it to the column you want). With ``fields`` the
    model answers in JSON with those typed fields (structured output, validated and re-asked
    when invalid) and each field becomes a column instead.
    """

    kind = Kind.GENERATE
    outputs = (Column("generated", "string", "the model's reply"),)

    class Params(LLMParams):
        prompt: str = Field(
            ...,
            description="Jinja2 template of the user message; row columns are "
            "its variables, e.g. 'Summarize: {{ text }}'",
        )
        fields: dict[str, str] | None = Field(
            None,
            description="structured output: {field: type} with types string, int, float, "
            "bool, list<T>; each field becomes a column instead of 'generated'",
        )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params.fields is not None:
            self.schema = fields_model(f"{self.name}Fields", self.params.fields)

    def output_columns(self) -> tuple[Column, ...]:
        if self.params.fields is None:
            return self.outputs
        return tuple(Column(name, t, "generated field") for name, t in self.params.fields.items())

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        if self.schema is not None:
            return response.parsed.model_dump()
        return {"generated": reply_text(response.text)}


class JudgeParams(LLMParams):
    criteria: str = Field(
        "overall quality: correctness, clarity and usefulness",
        description="what to judge, in words (the default prompt's {{ criteria }})",
    )
    min_score: int = Field(1, description="lowest score on the scale")
    max_score: int = Field(5, description="highest score on the scale")


class _Judge(LLMOperator):
    """Shared by the evaluator and the filter: a rationale and a bounded score per row."""

    _abstract = True
    inputs = (
        Column("text", "string", "what is judged (read by the default prompt)", optional=True),
    )
    template = PromptTemplate(JUDGE_PROMPT, JUDGE_SYSTEM)
    Params = JudgeParams
    max_tokens = 256  # a score and one or two sentences

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        lo, hi = self.params.min_score, self.params.max_score
        if lo >= hi:
            raise ConfigError(f"{self.name}: min_score ({lo}) must be below max_score ({hi})")
        self.schema = create_model(
            "Judgement",
            rationale=(str, Field(description="why this score, in one or two sentences")),
            score=(float, Field(ge=lo, le=hi, description=f"from {lo} (worst) to {hi} (best)")),
        )


class PromptedEvaluator(_Judge):
    """Scores each row with an LLM judge: a score on a fixed scale plus a short rationale.

    By default it judges the ``text`` column for ``criteria`` on a 1-5 scale; replace ``prompt``
    to judge anything (the reply must still be the JSON ``{"rationale": ..., "score": ...}``,
    which is requested as structured output and validated against the scale).
    """

    kind = Kind.EVALUATE
    outputs = (
        Column("score", "float", "the judge's score"),
        Column("rationale", "string", "why the judge gave that score"),
    )

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"score": response.parsed.score, "rationale": response.parsed.rationale}


class PromptedFilter(_Judge):
    """Keeps rows an LLM judge scores at least ``threshold``; drops the rest with the rationale.

    Same judge as :class:`PromptedEvaluator`; every dropped row records its score and the judge's
    rationale as its reason.
    """

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
        reason = f"score {score:g} < {threshold:g}: {response.parsed.rationale}"
        return score >= threshold, reason[:MAX_REASON_CHARS]


class PromptedRefiner(LLMOperator):
    """Rewrites a text column with an LLM following an instruction (fix grammar, translate...).

    The reply replaces the ``text`` column in place; an empty reply is a failure, not an empty
    string. A reply wrapped in a code fence is unwrapped.
    """

    kind = Kind.REFINE
    inputs = (Column("text", "string", "the text to rewrite"),)
    outputs = (Column("text", "string", "the rewritten text"),)
    template = PromptTemplate(REFINE_PROMPT)

    class Params(LLMParams):
        instruction: str = Field(
            ..., description="how to rewrite, e.g. 'Fix spelling and grammar; keep the meaning.'"
        )

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"text": reply_text(response.text)}


class PromptedFanOutGenerator(LLMOperator):
    """Generates ``n`` new rows from each row (questions about a document, paraphrases...).

    Each output row is a copy of its parent (same ``_id``) with one generated item in
    ``generated``. ``mode: list`` asks once for a JSON list of exactly ``n`` items (the template
    reads ``{{ n }}``); ``mode: samples`` asks ``n`` times with seeds ``seed``, ``seed+1``, ...
    (the template reads ``{{ index }}``; set a temperature above 0).
    """

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
