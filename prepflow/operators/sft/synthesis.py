"""Instruction and response synthesis (self-instruct style)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams, reply_text
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.common.llm import FanOutGenerator

SELF_INSTRUCT_SYSTEM = "You write task instructions for training a helpful assistant."
SELF_INSTRUCT_PROMPT = """\
Come up with {{ n }} new task instructions. Here is an example task:

{{ seed }}

Requirements:
- each instruction is self-contained and can be answered by a language model in text;
- the instructions differ from the example and from each other in topic and in kind of task \
(writing, reasoning, classification, explanation, coding, ...);
- each is one to three sentences, in the language of the example.

Reply with only a JSON object: {"items": ["instruction 1", "instruction 2", ...]}"""


class InstructionSynthesizer(FanOutGenerator):
    """Writes ``n`` new task instructions from each seed task (self-instruct style).

    Each seed row becomes ``n`` rows (same ``_id``, seed kept) with one new instruction in
    ``instruction``. The seed is shown to the model as an in-context example; the new
    instructions are asked to differ from it and from each other. Follow with
    :class:`ExactDedup` on ``instruction`` and a diversity selection to remove repeats.
    """

    domain = "sft"
    inputs = (Column("seed", "string", "a seed task instruction shown as the example"),)
    outputs = (Column("instruction", "string", "one new instruction"),)
    template = PromptTemplate(SELF_INSTRUCT_PROMPT, SELF_INSTRUCT_SYSTEM)

    class Params(FanOutGenerator.Params):
        prompt: str | None = Field(
            None, description="Jinja2 template replacing the default self-instruct prompt"
        )

    def parse(self, row: dict[str, Any], response: Any) -> list[dict[str, Any]]:
        return [{"instruction": g["generated"]} for g in super().parse(row, response)]


class ResponseGenerator(LLMOperator):
    """Answers each instruction with the model; the reply goes to ``response``.

    The default prompt is the instruction itself (set ``system_prompt`` for a persona or
    style). An empty reply is a failure record, never an empty response.
    """

    domain = "sft"
    inputs = (Column("instruction", "string", "the task to answer"),)
    outputs = (Column("response", "string", "the model's answer"),)
    template = PromptTemplate("{{ instruction }}")
    Params = LLMParams

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"response": reply_text(response.text)}
