"""Chain of thought with execution-based voting checked against the gold result, and difficulty
by model success rate."""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.context import QueryResult
from prepflow.core.operator import FilterOperator, Kind, Params
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql._db import DB_COLUMNS, DatabaseLLMParams
from prepflow.operators.text2sql.compare import compare_results
from prepflow.operators.text2sql.generation import (
    PREDICT_PROMPT,
    SQL_SYSTEM,
    _SchemaLLM,
    reply_texts,
)

COT_PROMPT = """\
Database schema ({{ dialect }}):

{{ schema }}

Question: {{ question }}

Think step by step, briefly:
1. Which tables and columns the question needs: only columns that appear in the schema above.
2. Joins: only when the question needs columns of several tables, on their keys.
3. The conditions, grouping, ordering and limit the question asks for, nothing more; select \
only what the question asks for.
Then give the final {{ dialect }} query, the simplest one that answers the question, in a \
```sql block at the end."""


def _vote(results: list[QueryResult | None]) -> list[list[int]]:
    """Samples grouped by equal results (executed ones only), largest group first; ties go to
    the group whose first sample came first."""
    groups: list[list[int]] = []
    for i, r in enumerate(results):
        if r is None or not r.ok:
            continue
        for g in groups:
            first = results[g[0]]
            assert first is not None
            if compare_results(first, r).correct:
                g.append(i)
                break
        else:
            groups.append([i])
    return sorted(groups, key=lambda g: (-len(g), g[0]))


class SQLCoTGenerator(_SchemaLLM):
    """Writes chain-of-thought solutions for (question, gold SQL) pairs: ``samples`` reasoned
    answers are drawn, each final query is executed, the samples vote by result (equal results
    under the comparator form one vote), and the winning result is **checked against the gold
    query's result**.

    Writes ``cot`` (the first winning sample: reasoning ending in its SQL), ``cot_sql``,
    ``cot_votes`` (share of the samples in the winning group), ``cot_verified`` (the winning
    result equals the gold result) and ``cot_check`` (why not, or the tally). Follow with
    :class:`SQLCoTFilter`, which drops unverified rows with that reason. Voting alone (as in
    DataFlow) keeps a majority that agrees on a wrong answer; this does not.
    """

    kind = Kind.GENERATE
    inputs = (
        Column("question", "string", "the question"),
        Column("sql", "string", "the gold query"),
        *DB_COLUMNS,
    )
    outputs = (
        Column("cot", "string", "reasoning ending in the SQL"),
        Column("cot_sql", "string", "the SQL the reasoning ends in"),
        Column("cot_votes", "float", "share of samples whose result won the vote"),
        Column("cot_verified", "bool", "the winning result equals the gold result"),
        Column("cot_check", "string", "the vote and the gold check, in words"),
    )
    template = PromptTemplate(COT_PROMPT, SQL_SYSTEM)
    max_tokens = 1024

    class Params(DatabaseLLMParams):
        samples: int = Field(3, ge=1, le=32, description="reasoned answers drawn per question")

    @property
    def requests_per_row(self) -> int:
        return self.params.samples

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        gold = row[self.col("sql")]
        ctx = await self.schema_context(row, row[self.col("question")], gold)
        seed = int(self.params.generation.get("seed", 0))
        messages = self.prompt_template.messages(**ctx)
        replies = await reply_texts(
            [self.chat(messages, seed=seed + i) for i in range(self.params.samples)]
        )
        texts = [(r or "").strip() for r in replies]  # an unusable answer: no vote
        sqls = [sqltools.extract_sql(t) for t in texts]
        judge = await asyncio.to_thread(self.judge_for, row)
        results = await asyncio.gather(
            *(asyncio.to_thread(judge.run, s) if s else _none() for s in sqls)
        )
        groups = _vote(list(results))
        n = self.params.samples
        if not groups:
            return self.check_output(
                {
                    "cot": texts[0],
                    "cot_sql": sqls[0],
                    "cot_votes": 0.0,
                    "cot_verified": False,
                    "cot_check": f"no sample ran (0/{n})",
                }
            )
        win = groups[0]
        verdict = await asyncio.to_thread(judge.judge_result, gold, results[win[0]])
        check = (
            f"matches gold ({len(win)}/{n} samples agree)"
            if verdict.correct
            else f"winning result ({len(win)}/{n}) differs from gold: {verdict}"
        )
        return self.check_output(
            {
                "cot": texts[win[0]],
                "cot_sql": sqls[win[0]],
                "cot_votes": len(win) / n,
                "cot_verified": verdict.correct,
                "cot_check": check,
            }
        )


async def _none() -> None:
    return None


class SQLCoTFilter(FilterOperator):
    """Keeps rows whose chain of thought was verified against the gold result, with at least
    ``min_votes`` of the samples agreeing.

    Drop reasons: ``cot not verified: <check>`` and ``cot_votes: 0.33 < min_votes=0.5``.
    """

    domain = "text2sql"
    inputs = (
        Column("cot_verified", "bool", "from SQLCoTGenerator"),
        Column("cot_votes", "float", "from SQLCoTGenerator"),
        Column("cot_check", "string", "from SQLCoTGenerator"),
    )

    class Params(Params):
        min_votes: float = Field(0.0, ge=0, le=1, description="least share of agreeing samples")

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        reasons: list[str | None] = []
        for ok, votes, check in zip(
            batch.column(self.col("cot_verified")).to_pylist(),
            batch.column(self.col("cot_votes")).to_pylist(),
            batch.column(self.col("cot_check")).to_pylist(),
            strict=True,
        ):
            if not ok:
                reasons.append(f"cot not verified: {check}")
            elif votes < self.params.min_votes:
                reasons.append(f"cot_votes: {votes:.2f} < min_votes={self.params.min_votes:g}")
            else:
                reasons.append(None)
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())


class SQLModelDifficulty(_SchemaLLM):
    """Difficulty by model success: the model answers each question ``attempts`` times (from
    the schema, as an evaluated model would) and each answer is judged by execution against the
    gold SQL. Writes ``success_rate`` and ``model_difficulty``: easy at or above ``easy_min``,
    medium at or above ``medium_min``, hard above 0, extra when no attempt succeeds."""

    kind = Kind.EVALUATE
    inputs = (
        Column("question", "string", "the question"),
        Column("sql", "string", "the gold query"),
        *DB_COLUMNS,
    )
    outputs = (
        Column("success_rate", "float", "share of attempts whose result equals the gold result"),
        Column("model_difficulty", "string", "easy, medium, hard or extra"),
    )
    template = PromptTemplate(PREDICT_PROMPT, SQL_SYSTEM)
    max_tokens = 400

    class Params(DatabaseLLMParams):
        attempts: int = Field(4, ge=1, le=32, description="answers per question")
        easy_min: float = Field(0.75, ge=0, le=1, description="least success rate of 'easy'")
        medium_min: float = Field(0.5, ge=0, le=1, description="least success rate of 'medium'")

    def check(self) -> list[str]:
        if self.params.medium_min > self.params.easy_min:
            return [f"{self.name}: medium_min exceeds easy_min"]
        return super().check()

    @property
    def requests_per_row(self) -> int:
        return self.params.attempts

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        ctx = await self.schema_context(row, row[self.col("question")])
        seed = int(self.params.generation.get("seed", 0))
        messages = self.prompt_template.messages(**ctx)
        replies = await reply_texts(
            [self.chat(messages, seed=seed + i) for i in range(self.params.attempts)]
        )
        judge = await asyncio.to_thread(self.judge_for, row)
        gold = row[self.col("sql")]
        gold_run = await asyncio.to_thread(judge.gold, gold)
        if not gold_run.result.ok:
            raise ValueError(
                f"the gold SQL does not run: {gold_run.result.status.value}: {gold_run.result.error}"
            )
        verdicts = await asyncio.gather(
            *(asyncio.to_thread(judge.judge, gold, sqltools.extract_sql(r or "")) for r in replies)
        )
        rate = sum(v.correct for v in verdicts) / len(verdicts)
        p = self.params
        label = (
            "easy"
            if rate >= p.easy_min
            else "medium"
            if rate >= p.medium_min
            else "hard"
            if rate > 0
            else "extra"
        )
        return self.check_output({"success_rate": rate, "model_difficulty": label})
