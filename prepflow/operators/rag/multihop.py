"""Multi-hop questions built over the search index: depth (a chain of hops, each needing a
retrieval) and width (several facts, each from its own chunk, combined)."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams
from prepflow.core.operator import Requirements
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.rag._index import load_index
from prepflow.operators.rag.index import INDEX_REQUIRES

SYSTEM = "You write questions that can only be answered by searching several documents."

DEPTH_PROMPT = """\
Below are {{ n }} passages. Write one question that needs a chain of {{ n }} lookups: the answer \
found in passage 1 leads to passage 2, and so on; the final answer comes from passage {{ n }}. \
The question must not name the intermediate answers. For each passage, in order, give the search \
query that would find it and copy word for word the phrase of it that the chain uses.

{{ passages }}

Reply with only a JSON object: {"question": "...", "answer": "...", \
"hops": [{"query": "...", "evidence": "..."}, ...one per passage, in order]}"""

WIDTH_PROMPT = """\
Below are {{ n }} passages. Write one question whose answer combines one fact from every passage \
(for example a comparison, a list, or a count over them). For each passage, in order, give the \
search query that would find it and copy word for word the phrase holding its fact.

{{ passages }}

Reply with only a JSON object: {"question": "...", "answer": "...", \
"hops": [{"query": "...", "evidence": "..."}, ...one per passage, in order]}"""


class Hop(BaseModel):
    query: str = Field(min_length=1, description="a search query that finds this passage")
    evidence: str = Field(min_length=1, description="the phrase of the passage used, verbatim")


class MultiHopQuestion(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    hops: list[Hop]


@cache
def question_with(hops: int) -> type[MultiHopQuestion]:
    """The reply with exactly ``hops`` hops in the schema itself, so that a server with guided
    decoding (vLLM, SGLang, llama.cpp) writes one per passage."""
    items = Annotated[list[Hop], Field(min_length=hops, max_length=hops)]
    return create_model("MultiHopQuestion", __base__=MultiHopQuestion, hops=(items, ...))


class MultiHopQuestionGenerator(LLMOperator):
    """Writes a depth or width multi-hop question from each seed chunk and its search results.

    ``depth``: starting from the seed chunk, each next passage is the best search hit for the
    previous one's text that is not yet in the chain (from another document when
    ``cross_document``): a chain of ``hops`` passages linked by retrieval; the question follows
    the chain. ``width``: the seed chunk and its ``hops - 1`` best hits; the question combines a
    fact of each. The model gives, per passage, the search query that finds it and the quoted
    evidence. Writes ``question``, ``answer``, ``evidence_ids``, ``evidence``, ``contexts`` (as
    the knowledge QA generators, so the same checks apply), ``hop_queries`` and ``hop_kind``.
    A seed whose search finds too few passages is a failure record.
    """

    domain = "rag"
    requires = Requirements(llm=True, packages=INDEX_REQUIRES.packages, extra=INDEX_REQUIRES.extra)
    inputs = (
        Column("chunk", "string", "the seed passage"),
        Column("chunk_id", "string", "the seed passage's id"),
    )
    outputs = (
        Column("question", "string", "the multi-hop question"),
        Column("answer", "string", "the reference answer"),
        Column("evidence_ids", "list<string>", "the passages of the hops, in order"),
        Column("evidence", "list<string>", "the quoted phrase of each passage"),
        Column("contexts", "list<string>", "the text of each passage"),
        Column("hop_queries", "list<string>", "a search query per hop"),
        Column("hop_kind", "string", "depth or width"),
    )
    template_variables = ("n", "passages")
    max_tokens = 512

    class Params(LLMParams):
        index_dir: str = Field(description="directory of the search index")
        kind: Literal["depth", "width"] = Field("depth", description="chain or combination")
        hops: int = Field(2, ge=2, le=5, description="passages per question")
        cross_document: bool = Field(
            False, description="take every next passage from a document not used yet"
        )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params.prompt is None:  # the default prompt depends on the kind
            base = DEPTH_PROMPT if self.params.kind == "depth" else WIDTH_PROMPT
            self.prompt_template = PromptTemplate(base, self.params.system_prompt or SYSTEM)

    @property
    def schema(self) -> type[MultiHopQuestion]:  # type: ignore[override]
        return question_with(self.params.hops)

    def passages(self, seed_id: str, seed_text: str) -> list[str]:
        """The chunk ids of the question's passages, the seed first."""
        index = load_index(self.params.index_dir)
        chain = [seed_id]
        docs = {index.doc_ids[index.position[seed_id]]} if seed_id in index.position else set()
        query = seed_text
        while len(chain) < self.params.hops:
            found = None
            for hit in index.search(query, 10 + len(chain)):
                doc = index.doc_ids[index.position[hit.chunk_id]]
                if hit.chunk_id in chain or (self.params.cross_document and doc in docs):
                    continue
                found = hit.chunk_id
                break
            if found is None:
                raise ValueError(
                    f"search found {len(chain)} of the {self.params.hops} passages needed"
                )
            chain.append(found)
            docs.add(index.doc_ids[index.position[found]])
            if self.params.kind == "depth":
                query = index.text(found)
        return chain

    async def arun_row(self, row: dict[str, Any]) -> Any:
        ids = self.passages(row[self.col("chunk_id")], row[self.col("chunk")])
        index = load_index(self.params.index_dir)
        texts = [row[self.col("chunk")]] + [index.text(i) for i in ids[1:]]
        shown = "\n\n".join(f"Passage {k}:\n{t}" for k, t in enumerate(texts, 1))
        messages = self.prompt_template.messages(
            **{**self.context(row), "n": len(ids), "passages": shown}
        )
        row = {**row, "__ids": ids, "__texts": texts}
        return self.checked_parse(row, await self.chat(messages))

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        v: MultiHopQuestion = response.parsed
        ids, texts = row["__ids"], row["__texts"]
        return {
            "question": v.question.strip(),
            "answer": v.answer.strip(),
            "evidence_ids": ids,
            "evidence": [h.evidence.strip() for h in v.hops],
            "contexts": texts,
            "hop_queries": [h.query.strip() for h in v.hops],
            "hop_kind": self.params.kind,
        }
