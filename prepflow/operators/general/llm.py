"""Generic LLM operators, configured from YAML with prompt templates over any columns."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams, fields_model, reply_text
from prepflow.core.operator import Kind
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.common.llm import FanOutGenerator, JudgeEvaluator, JudgeFilter

REFINE_PROMPT = """\
{{ instruction }}

Reply with only the rewritten text, without comments or quotes.

Text:
{{ text }}"""


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


class PromptedEvaluator(JudgeEvaluator):
    """Scores each row with an LLM judge: a score on a fixed scale plus a short rationale.

    By default it judges the ``text`` column for ``criteria`` on a 1-5 scale; replace ``prompt``
    to judge anything (the reply must still be the JSON ``{"rationale": ..., "score": ...}``,
    which is requested as structured output and validated against the scale). A reply with no
    valid score after the re-asks is a failure record, never a score. On the embedded default
    serving it runs on ``qwen2.5-coder-1.5b-instruct``, the smallest catalog model that judges
    better than chance (see the serving docs, "Choosing a judge model").
    """


class PromptedFilter(JudgeFilter):
    """Keeps rows an LLM judge scores at least ``threshold``; drops the rest with the rationale.

    Same judge as :class:`PromptedEvaluator`; every dropped row records its score and the judge's
    rationale as its reason. A row the judge gives no valid score is a failure record, not kept.
    """


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


class PromptedFanOutGenerator(FanOutGenerator):
    """Generates ``n`` new rows from each row (questions about a document, paraphrases...).

    Each output row is a copy of its parent (same ``_id``) with one generated item in
    ``generated``. ``mode: list`` asks once for a JSON list of exactly ``n`` items (the template
    reads ``{{ n }}``); ``mode: samples`` asks ``n`` times with seeds ``seed``, ``seed+1``, ...
    (the template reads ``{{ index }}``; set a temperature above 0).
    """
