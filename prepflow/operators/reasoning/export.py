"""Export verified math QA pairs as SFT chat conversations or as pretraining text."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import GenerateOperator, Params


def _set(batch: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in batch.column_names:
        return batch.set_column(batch.column_names.index(name), name, values)
    return batch.append_column(name, values)


class ToSftChat(GenerateOperator):
    """Turns question/answer pairs into chat conversations for supervised fine-tuning.

    ``messages`` is the OpenAI/Hugging Face chat list: an optional system message, the question
    as the user turn and the full solution (chain of thought and ``\\boxed{}``) as the
    assistant turn.
    """

    domain = "reasoning"
    inputs = (
        Column("question", "string", "the problem"),
        Column("answer", "string", "the solution"),
    )
    outputs = (Column("messages", "list<struct>", "[{role, content}, ...]"),)

    class Params(Params):
        system_prompt: str | None = Field(None, description="system message to prepend, if any")

    def process(self, batch: pa.Table) -> pa.Table:
        system = self.params.system_prompt
        head = [{"role": "system", "content": system}] if system else []
        questions = batch.column(self.col("question")).to_pylist()
        answers = batch.column(self.col("answer")).to_pylist()
        messages = [
            [*head, {"role": "user", "content": q}, {"role": "assistant", "content": a}]
            for q, a in zip(questions, answers, strict=True)
        ]
        return _set(batch, self.col("messages"), pa.array(messages))


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
        return _set(batch, self.col("text"), pa.array(texts, pa.string()))
