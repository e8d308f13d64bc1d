"""Knowledge QA: question/answer pairs from chunks, each with its evidence (chunk ids and the
quoted supporting spans), and the checks that keep only grounded, non-trivial pairs."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Annotated, Any

import pyarrow as pa
from pydantic import BaseModel, Field, create_model

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams, RowFailed, reply_text
from prepflow.core.operator import EvaluateOperator, FilterOperator, Kind, Params
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.common.textmatch import normalize, token_f1, token_recall

QA_SYSTEM = "You write exam questions that test knowledge stated in a given text."

QA_PROMPT = """\
Write {{ n }} question-answer pair(s) about the passage below. Each question must be answerable \
from the passage alone, specific (not "what does the passage say"), and in the passage's \
language. The answer is short: a name, number, phrase or one sentence taken from the passage. \
For each pair, copy the sentence or phrase of the passage that proves the answer, word for word, \
as "evidence".

Passage:
{{ chunk }}

Reply with only a JSON object: {"pairs": [{"question": "...", "answer": "...", "evidence": "..."}]}"""

MULTIHOP_PROMPT = """\
Write one question that can only be answered by combining a fact from passage A with a fact \
from passage B (a bridge or a comparison): neither passage alone is enough. Use the passages' \
language. The answer is short. Copy word for word the phrase of A and the phrase of B that \
together prove the answer.

Passage A:
{{ chunk }}

Passage B:
{{ partner }}

Reply with only a JSON object: \
{"question": "...", "answer": "...", "evidence_a": "...", "evidence_b": "..."}"""


class Pair(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    evidence: str = Field(min_length=1, description="a verbatim quote of the passage")


@cache
def pairs_of(n: int) -> type[BaseModel]:
    """The reply of :class:`ChunkQAGenerator`: exactly ``n`` pairs, in the schema itself, so that
    a server with guided decoding (vLLM, SGLang, llama.cpp) writes that many."""
    items = Annotated[list[Pair], Field(min_length=n, max_length=n)]
    return create_model("Pairs", pairs=(items, ...))


class MultiHop(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    evidence_a: str = Field(min_length=1)
    evidence_b: str = Field(min_length=1)


QA_OUTPUTS = (
    Column("question", "string", "the question"),
    Column("answer", "string", "the reference answer"),
    Column("evidence_ids", "list<string>", "ids of the chunks that hold the evidence"),
    Column("evidence", "list<string>", "the supporting span quoted from each evidence chunk"),
    Column("contexts", "list<string>", "the full text of each evidence chunk"),
)


class ChunkQAGenerator(LLMOperator):
    """Writes ``n`` question/answer pairs per chunk, each with the quoted evidence span.

    One output row per pair (rows keep the chunk's ``_id``), with ``evidence_ids`` = [the
    chunk's id], ``evidence`` = [the quote] and ``contexts`` = [the chunk]. Follow with
    :class:`EvidenceSupportFilter` (the quote must be in the chunk, the answer in the quote)
    and :class:`ClosedBookFilter`. A reply that does not validate is a failure record.
    """

    domain = "knowledge"
    inputs = (
        Column("chunk", "string", "the passage"),
        Column("chunk_id", "string", "the passage's id"),
    )
    outputs = QA_OUTPUTS
    template = PromptTemplate(QA_PROMPT, QA_SYSTEM)

    class Params(LLMParams):
        n: int = Field(2, ge=1, le=10, description="pairs per chunk")

    @property
    def schema(self) -> type[BaseModel]:  # type: ignore[override]
        return pairs_of(self.params.n)

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        return 160 * self.params.n + 64

    def parse(self, row: dict[str, Any], response: Any) -> list[dict[str, Any]]:
        pairs = response.parsed.pairs
        chunk, chunk_id = row[self.col("chunk")], row[self.col("chunk_id")]
        return [
            {
                "question": p.question.strip(),
                "answer": p.answer.strip(),
                "evidence_ids": [chunk_id],
                "evidence": [p.evidence.strip()],
                "contexts": [chunk],
            }
            for p in pairs
        ]


class MultiHopQAGenerator(LLMOperator):
    """Writes one question per chunk that needs that chunk and the next one of the batch.

    Chunks are paired with their successor in the batch (shuffle or sort them first to pair
    across documents); the answer must combine a fact of each, quoted as evidence. Follow with
    :class:`EvidenceSupportFilter` and :class:`SingleChunkFilter` (a question one chunk
    answers is not multi-hop). A batch of one chunk yields a failure record for it.
    """

    domain = "knowledge"
    inputs = (
        Column("chunk", "string", "the passage"),
        Column("chunk_id", "string", "the passage's id"),
    )
    outputs = QA_OUTPUTS
    template = PromptTemplate(MULTIHOP_PROMPT, QA_SYSTEM)
    template_variables = ("partner",)
    schema = MultiHop
    max_tokens = 320

    def batch_rows(self, batch: pa.Table) -> list[dict[str, Any]]:
        rows = batch.to_pylist()
        for i, row in enumerate(rows):
            partner = rows[(i + 1) % len(rows)]
            row["__partner"] = partner if partner is not row else None
        return rows

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        partner = row.get("__partner")
        ctx = super().context(row)
        ctx["partner"] = partner[self.col("chunk")] if partner else None
        return ctx

    async def arun_row(self, row: dict[str, Any]) -> Any:
        if row.get("__partner") is None:
            raise ValueError("multi-hop needs at least two chunks in the batch")
        return await super().arun_row(row)

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        v: MultiHop = response.parsed
        partner = row["__partner"]
        return {
            "question": v.question.strip(),
            "answer": v.answer.strip(),
            "evidence_ids": [row[self.col("chunk_id")], partner[self.col("chunk_id")]],
            "evidence": [v.evidence_a.strip(), v.evidence_b.strip()],
            "contexts": [row[self.col("chunk")], partner[self.col("chunk")]],
        }


# ---- checks ----------------------------------------------------------------------------------


class EvidenceSupportFilter(FilterOperator):
    """Keeps QA pairs whose evidence is really in the chunks and supports the answer (no model).

    Rule ``evidence_in_chunk``: each quoted span, normalized (case, punctuation, spaces), must
    occur in its chunk. Rule ``min_answer_recall``: the share of the answer's tokens found in
    the quoted spans must reach the threshold (1.0 = the whole normalized answer is quoted). A
    dropped pair's reason names the rule, the measured value and the threshold.
    """

    domain = "knowledge"
    inputs = (
        Column("answer", "string", "the answer"),
        Column("evidence", "list<string>", "quoted supporting spans"),
        Column("contexts", "list<string>", "the evidence chunks' text"),
    )

    class Params(Params):
        min_answer_recall: float = Field(
            0.8, ge=0, le=1, description="share of answer tokens that must occur in the evidence"
        )

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        answers = batch.column(self.col("answer")).to_pylist()
        quotes = batch.column(self.col("evidence")).to_pylist()
        chunks = batch.column(self.col("contexts")).to_pylist()
        mask, reasons = [], []
        for answer, spans, contexts in zip(answers, quotes, chunks, strict=True):
            reason = self._check(answer or "", spans or [], contexts or [])
            mask.append(reason is None)
            reasons.append(reason)
        return pa.array(mask, pa.bool_()), pa.array(reasons, pa.string())

    def _check(self, answer: str, spans: list[str], contexts: list[str]) -> str | None:
        if not spans or len(spans) != len(contexts):
            return f"evidence_in_chunk: {len(spans)} quotes for {len(contexts)} chunks"
        for k, (span, context) in enumerate(zip(spans, contexts, strict=True), 1):
            if not normalize(span) or normalize(span) not in normalize(context):
                return f"evidence_in_chunk: quote {k} of {len(spans)} is not in its chunk"
        recall = token_recall(answer, " ".join(spans))
        threshold = self.params.min_answer_recall
        if recall < threshold:
            return f"min_answer_recall: {recall:.2f} < {threshold:g}"
        return None


class AnswerF1(EvaluateOperator):
    """Token F1 between a predicted answer and a reference (SQuAD-style, CJK-aware)."""

    domain = "knowledge"
    inputs = (
        Column("prediction", "string", "the answer to score"),
        Column("reference", "string", "the reference answer"),
    )
    outputs = (Column("answer_f1", "float", "token F1 in [0, 1]"),)

    def process(self, batch: pa.Table) -> pa.Table:
        preds = batch.column(self.col("prediction")).to_pylist()
        refs = batch.column(self.col("reference")).to_pylist()
        scores = [
            None if p is None or r is None else token_f1(p, r)
            for p, r in zip(preds, refs, strict=True)
        ]
        name = self.col("answer_f1")
        column = pa.array(scores, pa.float64())
        if name in batch.column_names:
            return batch.set_column(batch.column_names.index(name), name, column)
        return batch.append_column(name, column)


CLOSED_BOOK_PROMPT = """\
Answer the question in a few words. If you do not know, reply "unknown".

Question: {{ question }}"""

ONE_PASSAGE_PROMPT = """\
Answer the question using only the passage. Reply in a few words, or "unknown" if the passage \
is not enough.

Passage:
{{ passage }}

Question: {{ question }}"""


class ClosedBookFilter(LLMOperator):
    """Drops questions the model answers correctly without the document (not knowledge tests).

    Asks ``question`` alone; when the token F1 of the reply against ``answer`` reaches
    ``max_f1`` the pair is dropped with ``max_f1: closed-book answer F1 0.91 >= 0.5``.
    """

    domain = "knowledge"
    kind = Kind.FILTER
    inputs = (
        Column("question", "string", "the question"),
        Column("answer", "string", "the reference answer"),
    )
    template = PromptTemplate(CLOSED_BOOK_PROMPT)
    max_tokens = 64

    class Params(LLMParams):
        max_f1: float = Field(
            0.5, gt=0, le=1, description="drop when the closed-book answer scores this F1 or more"
        )

    def parse(self, row: dict[str, Any], response: Any) -> tuple[bool, str]:
        f1 = token_f1(reply_text(response.text), row[self.col("answer")])
        if f1 >= self.params.max_f1:
            return False, f"max_f1: closed-book answer F1 {f1:.2f} >= {self.params.max_f1:g}"
        return True, ""


class SingleChunkFilter(LLMOperator):
    """Drops multi-hop questions that one evidence chunk answers alone.

    Asks the question once per evidence chunk, with only that chunk; when any reply's token F1
    against ``answer`` reaches ``max_f1`` the pair is dropped with the chunk that sufficed.
    """

    domain = "knowledge"
    kind = Kind.FILTER
    inputs = (
        Column("question", "string", "the question"),
        Column("answer", "string", "the reference answer"),
        Column("evidence_ids", "list<string>", "ids of the evidence chunks"),
        Column("contexts", "list<string>", "the evidence chunks' text"),
    )
    template = PromptTemplate(ONE_PASSAGE_PROMPT)
    template_variables = ("passage",)
    max_tokens = 64

    class Params(LLMParams):
        max_f1: float = Field(
            0.5, gt=0, le=1, description="drop when one chunk's answer scores this F1 or more"
        )

    @property
    def requests_per_row(self) -> int:
        return 2

    async def arun_row(self, row: dict[str, Any]) -> Any:
        contexts = row[self.col("contexts")]
        ids = row[self.col("evidence_ids")]
        replies = await asyncio.gather(
            *(
                self.chat(self.prompt_template.messages(**{**self.context(row), "passage": c}))
                for c in contexts
            )
        )
        best, best_id = 0.0, None
        for reply, chunk_id in zip(replies, ids, strict=True):
            try:
                f1 = token_f1(reply_text(reply.text), row[self.col("answer")])
            except ValueError as e:  # an empty reply: the row was not checked
                self._serving.forget(reply)
                raise RowFailed(
                    "ParseError", str(e), attempts=reply.attempts, raw=reply.text
                ) from e
            if f1 >= best:
                best, best_id = f1, chunk_id
        if best >= self.params.max_f1:
            return self.check_output(
                (
                    False,
                    f"max_f1: chunk {best_id} alone answers with F1 {best:.2f} >= "
                    f"{self.params.max_f1:g}",
                )
            )
        return self.check_output((True, ""))
