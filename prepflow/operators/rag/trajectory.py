"""Search-agent trajectories: question -> search calls -> retrieved chunks -> cited answer, in
OpenAI tool-call message format, and their verification by replaying the searches."""

from __future__ import annotations

from typing import Any, Literal

import orjson
import pyarrow as pa
from pydantic import BaseModel, Field

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError
from prepflow.core.llm import LLMOperator, LLMParams
from prepflow.core.operator import FilterOperator, Requirements
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.common.textmatch import token_f1, token_recall
from prepflow.operators.rag._index import load_index
from prepflow.operators.rag.index import INDEX_REQUIRES, IndexParams

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the document collection; returns the best passages with their ids.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "what to look for"}},
            "required": ["query"],
        },
    },
}

AGENT_SYSTEM = """\
You answer questions about a document collection that you can only see through a search tool. \
At each step reply with only a JSON object, either {"action": "search", "query": "..."} to \
search, or {"action": "answer", "answer": "...", "cite": ["<passage id>", ...]} to answer, citing \
the ids of the passages that support the answer. Search as often as you need (at most \
{{ max_steps }} searches), one hop at a time; answer briefly."""


class Action(BaseModel):
    action: Literal["search", "answer"]
    query: str | None = Field(None, description="the search query (action search)")
    answer: str | None = Field(None, description="the short answer (action answer)")
    cite: list[str] = Field(default_factory=list, description="ids of the supporting passages")


def tool_result(hits: list[tuple[str, str]], max_chars: int) -> str:
    """What the agent sees for one search: ``[id] text`` per passage."""
    if not hits:
        return "no results"
    return "\n\n".join(f"[{cid}] {text[:max_chars]}" for cid, text in hits)


class SearchTrajectoryGenerator(LLMOperator):
    """Has the model answer each question by searching the index, recording the trajectory.

    The model replies with JSON actions (search or answer, which every OpenAI-compatible server
    can do); each search runs against the index (``bm25``, or ``dense``/``hybrid`` with the
    query embedded by the serving's embeddings endpoint) and its top ``k`` passages are shown
    as the tool's reply. The trajectory is written as OpenAI chat ``messages``: the user's
    question, assistant turns with ``tool_calls`` to ``search``, ``tool`` replies, and the final
    answer; ``tools`` holds the tool definition (JSON). Also writes ``search_queries``,
    ``retrieved_ids`` (per search), ``cited_ids`` and ``predicted_answer`` for
    :class:`TrajectoryVerifier`. No answer within ``max_steps`` searches is a failure record.
    """

    domain = "rag"
    requires = Requirements(llm=True, packages=INDEX_REQUIRES.packages, extra=INDEX_REQUIRES.extra)
    inputs = (Column("question", "string", "the question to research"),)
    outputs = (
        Column("messages", "list<struct>", "the trajectory as OpenAI chat messages"),
        Column("tools", "string", "the OpenAI tool definitions (JSON)"),
        Column("search_queries", "list<string>", "the queries searched, in order"),
        Column("retrieved_ids", "list<list<string>>", "the passages each search returned"),
        Column("cited_ids", "list<string>", "the passages the answer cites"),
        Column("predicted_answer", "string", "the agent's answer"),
    )
    schema = Action
    max_tokens = 256

    class Params(LLMParams):
        index_dir: str = Field(description="directory of the search index")
        k: int = Field(3, ge=1, le=20, description="passages per search")
        max_steps: int = Field(4, ge=1, le=12, description="most searches before answering")
        mode: Literal["bm25", "dense", "hybrid"] = Field("bm25", description="search method")
        max_chars: int = Field(600, ge=50, description="characters of each passage shown")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params.prompt is None:
            self.prompt_template = PromptTemplate(
                "{{ question }}", self.params.system_prompt or AGENT_SYSTEM
            )

    @property
    def requests_per_row(self) -> int:
        return self.params.max_steps + 1

    async def _search(self, query: str) -> list[tuple[str, str]]:
        index = load_index(self.params.index_dir)
        vector = None
        if self.params.mode != "bm25":
            (vector,) = await self._serving.embed([query])
        hits = index.search(query, self.params.k, self.params.mode, vector)
        return [(h.chunk_id, index.text(h.chunk_id)) for h in hits]

    async def arun_row(self, row: dict[str, Any]) -> Any:
        prompt = self.prompt_template.messages(**self.context(row))
        messages: list[dict[str, Any]] = [
            m for m in prompt if m["role"] == "user"
        ]  # the recorded trajectory: the system prompt is the trainer's choice
        convo = list(prompt)
        queries: list[str] = []
        retrieved: list[list[str]] = []
        for step in range(self.params.max_steps + 1):
            reply = await self.chat(convo)
            action: Action = reply.parsed
            if action.action == "answer" and action.answer:
                messages.append({"role": "assistant", "content": action.answer.strip()})
                return self.check_output(
                    {
                        "messages": messages,
                        "tools": orjson.dumps([SEARCH_TOOL]).decode(),
                        "search_queries": queries,
                        "retrieved_ids": retrieved,
                        "cited_ids": list(dict.fromkeys(action.cite)),
                        "predicted_answer": action.answer.strip(),
                    }
                )
            if action.action != "search" or not action.query or step == self.params.max_steps:
                break
            hits = await self._search(action.query)
            call_id = f"call_{step + 1}"
            arguments = orjson.dumps({"query": action.query}).decode()
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": "search", "arguments": arguments},
            }
            result = tool_result(hits, self.params.max_chars)
            messages += [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call_id, "content": result},
            ]
            convo += [
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": f"Search results for {action.query!r}:\n\n{result}"},
            ]
            queries.append(action.query)
            retrieved.append([cid for cid, _ in hits])
        raise ValueError(
            f"no answer after {len(queries)} searches (max_steps {self.params.max_steps})"
        )


class TrajectoryVerifier(FilterOperator):
    """Keeps trajectories whose searches replay, whose citations were retrieved and hold the
    answer, and whose answer matches the reference.

    Rules, each named in the reason of a dropped row: ``replay`` (searching each recorded query
    again returns the recorded passages: the trajectory is reproducible), ``cited_retrieved``
    (every cited passage came back from a search, so the agent did not cite from memory),
    ``min_answer_recall`` (the cited passages contain the reference answer's tokens at least
    this share), ``min_answer_f1`` (the predicted answer's token F1 against the reference).
    Replays BM25 searches (trajectories made with ``mode: bm25``).
    """

    domain = "rag"
    requires = INDEX_REQUIRES
    inputs = (
        Column("search_queries", "list<string>", "recorded queries"),
        Column("retrieved_ids", "list<list<string>>", "recorded results per query"),
        Column("cited_ids", "list<string>", "cited passages"),
        Column("predicted_answer", "string", "the agent's answer"),
        Column("answer", "string", "the reference answer"),
    )

    class Params(IndexParams):
        k: int = Field(3, ge=1, description="passages per search, as when generated")
        min_answer_recall: float = Field(0.8, ge=0, le=1, description="see rule min_answer_recall")
        min_answer_f1: float = Field(0.5, ge=0, le=1, description="see rule min_answer_f1")
        require_search: bool = Field(True, description="drop trajectories that never searched")

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        index = load_index(self.params.index_dir)
        cols = {c.name: batch.column(self.col(c.name)).to_pylist() for c in self.inputs}
        reasons = [
            self._check(index, *values)
            for values in zip(*(cols[c.name] for c in self.inputs), strict=True)
        ]
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())

    def _check(
        self,
        index: Any,
        queries: list[str] | None,
        retrieved: list[list[str]] | None,
        cited: list[str] | None,
        predicted: str | None,
        answer: str | None,
    ) -> str | None:
        queries, retrieved, cited = queries or [], retrieved or [], cited or []
        if self.params.require_search and not queries:
            return "require_search: the agent answered without searching"
        for n, (query, got) in enumerate(zip(queries, retrieved, strict=True), 1):
            again = [h.chunk_id for h in index.search(query, self.params.k)]
            if again != got:
                return f"replay: search {n} ({query!r}) returns {again}, recorded {got}"
        seen = {cid for got in retrieved for cid in got}
        if missing := [c for c in cited if c not in seen]:
            return f"cited_retrieved: cited {missing} never retrieved"
        if not cited:
            return "cited_retrieved: the answer cites no passage"
        unknown = [c for c in cited if c not in index.position]
        if unknown:
            raise ConfigError(
                f"cited passages {unknown} are not in the index at {self.params.index_dir}"
            )
        recall = token_recall(answer or "", " ".join(index.text(c) for c in cited))
        if recall < self.params.min_answer_recall:
            return f"min_answer_recall: {recall:.2f} < {self.params.min_answer_recall:g}"
        f1 = token_f1(predicted or "", answer or "")
        if f1 < self.params.min_answer_f1:
            return f"min_answer_f1: {f1:.2f} < {self.params.min_answer_f1:g}"
        return None
