"""Export verified math QA pairs as SFT chat conversations or as pretraining text."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import GenerateOperator, Params
from prepflow.core.tables import set_column
from prepflow.operators.common.chat import ChatMessages


class ToSftChat(ChatMessages):
    """Turns question/answer pairs into chat conversations for supervised fine-tuning.

    ``messages`` is the OpenAI/Hugging Face chat list: an optional system message (the row's
    ``system`` column when bound, else ``system_prompt``), the question as the user turn and the
    full solution (chain of thought and ``\\boxed{}``) as the assistant turn. A row with a null
    question or answer becomes a failure record.
    """

    domain = "reasoning"
    version = "2"  # a null question or answer is a failure record (was a null turn)
    user, assistant = "question", "answer"
    inputs = (
        Column("question", "string", "the problem"),
        Column("answer", "string", "the solution"),
        Column("system", "string", "a per-row system message", optional=True),
    )
    outputs = (Column("messages", "list<struct>", "[{role, content}, ...]"),)


class ToPretrainText(GenerateOperator):
    """Joins question and solution into one document for pretraining (``text``).

    The document is ``question_prefix + question + separator + answer_prefix + answer``.
    """

    domain = "reasoning"
    inputs = (
        Column("question", "string", "the problem"),
        Column("answer", "string", "the solution"),
    )
    outputs = (Column("text", "string", "the document"),)

    class Params(Params):
        question_prefix: str = Field("Problem: ", description="text before the question")
        answer_prefix: str = Field("Solution: ", description="text before the solution")
        separator: str = Field("\n\n", description="text between question and solution")

    def process(self, batch: pa.Table) -> pa.Table:
        p = self.params
        texts = [
            f"{p.question_prefix}{q}{p.separator}{p.answer_prefix}{a}"
            for q, a in zip(
                batch.column(self.col("question")).to_pylist(),
                batch.column(self.col("answer")).to_pylist(),
                strict=True,
            )
        ]
        return set_column(batch, self.col("text"), pa.array(texts, pa.string()))
