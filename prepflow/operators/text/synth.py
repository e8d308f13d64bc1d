"""Pretraining data synthesis (Phi style): rewrite documents as QA pairs or a dialogue, then check
the rewrite against its source."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.common.llm import JUDGE_SYSTEM, JudgeFilter

REWRITE_SYSTEM = "You turn documents into clear, self-contained teaching material."
QA_PROMPT = """\
Rewrite the document below as {{ items }} question-answer pairs that together teach its content.
Each question stands on its own (no "the document", "the text"); each answer is complete and uses \
only facts stated in the document.

Document:
{{ text }}

Reply with only a JSON object: {"pairs": [{"question": "...", "answer": "..."}, ...]}"""
DIALOGUE_PROMPT = """\
Rewrite the document below as a dialogue between a curious student and a knowledgeable teacher, \
in about {{ items }} turns, that covers its content. The teacher uses only facts stated in the \
document.

Document:
{{ text }}

Reply with only a JSON object: {"turns": [{"speaker": "Student", "text": "..."}, ...]}"""

FAITHFULNESS_PROMPT = """\
Check whether the rewrite below is faithful to its source document: every fact it states must be \
supported by the source, and it must not contradict the source.

Source document:
{{ source }}

Rewrite:
{{ text }}

Give a short rationale naming any unsupported or contradicted claim, then a score from \
{{ min_score }} (mostly unsupported) to {{ max_score }} (fully supported). Reply with only a JSON \
object: {"rationale": "...", "score": <number>}"""


class QAPair(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class Turn(BaseModel):
    speaker: str = Field(min_length=1)
    text: str = Field(min_length=1)


def _rewrite_schema(qa: bool, items: int) -> type[BaseModel]:
    """Pairs or turns, at most ``items`` of them: servers with grammar-constrained output (llama.cpp,
    vLLM) then stop the model there, instead of letting a small model repeat itself to the token
    limit; a dialogue may run a little longer than asked, since turns come in pairs."""
    if qa:
        return create_model("QAPairs", pairs=(list[QAPair], Field(min_length=1, max_length=items)))
    return create_model("Dialogue", turns=(list[Turn], Field(min_length=2, max_length=items + 2)))


class DocumentRewriter(LLMOperator):
    """Rewrites each document as question-answer pairs or a teacher-student dialogue (Phi style).

    The model answers in structured form (pairs or turns, validated and re-asked when invalid),
    rendered into ``synthetic`` as plain text: ``Question: ...`` / ``Answer: ...`` blocks, or
    ``Speaker: text`` lines. The source stays in its column, so :class:`FaithfulnessFilter` can
    check the rewrite against it.
    """

    domain = "text"
    inputs = (Column("text", "string", "the source document"),)
    outputs = (Column("synthetic", "string", "the rewritten document"),)

    class Params(LLMParams):
        style: Literal["qa", "dialogue"] = Field(
            "qa", description="qa: question-answer pairs; dialogue: student-teacher turns"
        )
        items: int = Field(
            3, ge=1, le=50, description="QA pairs (at most), or dialogue turns (about), to ask for"
        )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        qa = self.params.style == "qa"
        self.prompt_template = PromptTemplate(
            QA_PROMPT if qa else DIALOGUE_PROMPT, REWRITE_SYSTEM
        ).override(self.params.prompt, self.params.system_prompt)
        self.prompt_template.check()
        self.schema = _rewrite_schema(qa, self.params.items)

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        doc = response.parsed
        if self.params.style == "qa":
            text = "\n\n".join(f"Question: {p.question}\nAnswer: {p.answer}" for p in doc.pairs)
        else:
            text = "\n".join(f"{t.speaker}: {t.text}" for t in doc.turns)
        return {"synthetic": text}


class FaithfulnessFilter(JudgeFilter):
    """Drops rewrites an LLM judge finds unfaithful to their source document.

    The judge scores support of the rewrite by the source (default 1-5) with a rationale naming
    unsupported claims; rows scored below ``threshold`` are dropped with the score and rationale
    as their reason.
    """

    domain = "text"
    inputs = (
        Column("source", "string", "the source document"),
        Column("text", "string", "the rewrite to check"),
    )
    template = PromptTemplate(FAITHFULNESS_PROMPT, JUDGE_SYSTEM)

    class Params(JudgeFilter.Params):
        threshold: float = Field(4, description="keep rewrites scored at least this")
