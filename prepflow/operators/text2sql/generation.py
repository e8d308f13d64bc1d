"""LLM operators that write SQL and questions from a database's schema."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable
from typing import Any, Literal

from pydantic import BaseModel, Field

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, reply_text
from prepflow.core.operator import Kind
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql._db import (
    DB_COLUMNS,
    SQLGLOT_LLM,
    DatabaseAccess,
    DatabaseLLMParams,
)

SQL_SYSTEM = "You are an expert data analyst who writes correct SQL."

DIFFICULTY_HINTS = {
    "easy": "one table, at most one condition, no grouping, ordering or nesting",
    "medium": "a join, or a GROUP BY, or an ORDER BY with LIMIT, and one or two conditions",
    "hard": "joins with grouping and HAVING, ordering and a limit, or one nested query",
    "extra": "several of: nested queries, UNION/INTERSECT/EXCEPT, several joins with grouping "
    "and ordering",
}

GENERATE_PROMPT = """\
Database schema ({{ dialect }}):

{{ schema }}

Write one {{ difficulty }} SQL query ({{ hint }}) that answers a question a user of this \
database could plausibly ask.{% if columns %} The query must use the column(s) {{ columns }}.{% endif %} \
Use only tables and columns of the schema; the query must return rows. Reply with only the \
query in a ```sql block."""

VARIATIONS = {
    "values": "Change the constants (values in conditions, limits) to other values that exist "
    "in the database.",
    "conditions": "Add, remove or change one condition.",
    "columns": "Select or aggregate different columns of the same tables.",
    "harder": "Make it harder: add a join, a grouping or a nested query.",
}

VARIATION_PROMPT = """\
Database schema ({{ dialect }}):

{{ schema }}

Seed query:
```sql
{{ sql }}
```

Write a new query that differs from the seed query as follows: {{ instruction }} The new query \
must run on this database and return rows. Reply with only the new query in a ```sql block."""

STYLES = {
    "formal": "a formal, precise question",
    "colloquial": "a casual, conversational question as a person would type it",
    "imperative": 'a request phrased as an instruction ("List ...", "Show ...")',
    "vague": "a somewhat vague question that leaves obvious details implicit but still has "
    "this query as its most natural reading",
    "descriptive": "a question that describes what is wanted without naming tables or columns",
    "multi-turn": "a short conversation of two or three user turns, one per line starting with "
    "'User:', in which the request is refined until it means exactly this query",
}

QUESTION_PROMPT = """\
Database schema ({{ dialect }}):

{{ schema }}

SQL query:
```sql
{{ sql }}
```

Write {{ style }} whose answer is exactly what this query returns. Do not mention SQL, and \
mention table or column names only as a person would. Reply with only the question."""

JUDGE_PROMPT = """\
Database schema ({{ dialect }}):

{{ schema }}

Question: {{ question }}

SQL query:
```sql
{{ sql }}
```

Does the SQL query answer exactly this question (the same data, conditions, grouping, ordering \
and limit the question asks for, nothing more and nothing less)? Reply with only a JSON \
object: {"reason": "<one sentence>", "matches": true|false}"""

PREDICT_PROMPT = """\
Database schema ({{ dialect }}):

{{ schema }}

Question: {{ question }}

Write a {{ dialect }} SQL query that answers the question. Reply with only the query in a \
```sql block."""


async def reply_texts(calls: list[Awaitable[Any]]) -> list[str | None]:
    """The texts of several answers, in order, each independent of the others: an answer the
    model left unusable even after re-asks (cut off at the token limit) still counts when it
    holds a complete ```sql block (small models explain after the query), and is None
    otherwise. Serving errors (HTTP, network) propagate: the row fails and ``prepflow retry``
    asks again."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    texts: list[str | None] = []
    for r in results:
        if not isinstance(r, BaseException):
            texts.append(r.text)
            continue
        raw = getattr(r, "raw", None)
        if not isinstance(r, Exception) or not isinstance(raw, str):
            raise r
        texts.append(raw if sqltools.fenced_sql(raw) else None)
    return texts


class _SchemaLLM(DatabaseAccess, LLMOperator):
    """An LLM operator that shows the row's database schema in its prompt."""

    abstract = True
    domain = "text2sql"
    requires = SQLGLOT_LLM
    template_variables = ("schema", "dialect")
    Params = DatabaseLLMParams

    def setup(self, ctx: Any) -> None:
        super().setup(ctx)
        self.setup_database(ctx)

    async def schema_context(
        self, row: dict[str, Any], question: str = "", sql: str = ""
    ) -> dict[str, Any]:
        """The template variables plus ``schema`` (linked tables when large) and ``dialect``."""
        db = await asyncio.to_thread(self.database_for, row)
        try:
            read = tuple(sqltools.tables_of(sql, db.dialect)) if sql else ()
        except sqltools.SQLParseError:
            read = ()
        schema = await asyncio.to_thread(self.schema_prompt, row, question, read)
        return {**self.context(row), "schema": schema, "dialect": db.dialect}


class SQLGenerator(_SchemaLLM):
    """Writes SQL queries from a database's schema, by difficulty (and optionally over given
    columns): for each input row (one database), ``n`` queries per difficulty.

    Each output row copies its input row with ``sql`` and ``target_difficulty`` (the difficulty
    asked for; :class:`SQLComponentDifficulty` measures the one reached). A reply without SQL
    gives ``sql`` = "" and the parse filter drops that row with its reason: nothing is dropped
    silently.
    """

    kind = Kind.GENERATE
    inputs = DB_COLUMNS
    outputs = (
        Column("sql", "string", "the generated query"),
        Column("target_difficulty", "string", "the difficulty asked for"),
    )
    template = PromptTemplate(GENERATE_PROMPT, SQL_SYSTEM)
    template_variables = ("schema", "dialect", "difficulty", "hint")
    max_tokens = 400

    class Params(DatabaseLLMParams):
        n: int = Field(2, ge=1, le=50, description="queries per difficulty and database")
        difficulties: list[Literal["easy", "medium", "hard", "extra"]] = Field(
            ["easy", "medium", "hard", "extra"], min_length=1, description="difficulties asked for"
        )
        columns: list[str] = Field(
            default_factory=list, description="columns the queries must use (empty: any)"
        )

    @property
    def requests_per_row(self) -> int:
        return self.params.n * len(self.params.difficulties)

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        ctx = await self.schema_context(row)
        seed = int(self.params.generation.get("seed", 0))
        asks = [(d, i) for d in self.params.difficulties for i in range(self.params.n)]
        replies = await reply_texts(
            [
                self.chat(
                    self.prompt_template.messages(
                        **{**ctx, "columns": ", ".join(self.params.columns)},
                        difficulty=d,
                        hint=DIFFICULTY_HINTS[d],
                    ),
                    seed=seed + i,
                )
                for d, i in asks
            ]
        )
        return self.check_output(
            [
                {"sql": sqltools.extract_sql(r or ""), "target_difficulty": d}
                for (d, _), r in zip(asks, replies, strict=True)
            ]
        )


class SQLVariationGenerator(_SchemaLLM):
    """Adds ``n`` variations of each seed query beside it (the seed row stays, ``variation:
    seed``): other constants, conditions, columns, or a harder query, cycling through
    ``variations``. Variant rows copy their seed row with the new ``sql``, the seed query in
    ``seed_sql`` and ``question`` set to "" (the seed's question does not fit them: generate
    new ones with :class:`QuestionGenerator`)."""

    kind = Kind.GENERATE
    inputs = (
        Column("sql", "string", "the seed query"),
        Column("question", "string", "the seed's question", optional=True),
        *DB_COLUMNS,
    )
    outputs = (
        Column("sql", "string", "the query (the seed on its own row)"),
        Column("seed_sql", "string", "the seed query"),
        Column("variation", "string", "seed, values, conditions, columns or harder"),
        Column("question", "string", "the seed's question on the seed row, else ''"),
    )
    template = PromptTemplate(VARIATION_PROMPT, SQL_SYSTEM)
    template_variables = ("schema", "dialect", "instruction")
    max_tokens = 400

    class Params(DatabaseLLMParams):
        n: int = Field(2, ge=1, le=20, description="variations per seed")
        variations: list[Literal["values", "conditions", "columns", "harder"]] = Field(
            ["values", "conditions", "columns", "harder"],
            min_length=1,
            description="kinds, in turn",
        )

    @property
    def requests_per_row(self) -> int:
        return self.params.n

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        sql = row[self.col("sql")]
        ctx = await self.schema_context(row, sql=sql)
        seed = int(self.params.generation.get("seed", 0))
        kinds = [
            self.params.variations[i % len(self.params.variations)] for i in range(self.params.n)
        ]
        replies = await reply_texts(
            [
                self.chat(
                    self.prompt_template.messages(**ctx, instruction=VARIATIONS[k]), seed=seed + i
                )
                for i, k in enumerate(kinds)
            ]
        )
        question = row.get(self.col("question")) or ""
        out = [{"sql": sql, "seed_sql": sql, "variation": "seed", "question": question}]
        out += [
            {"sql": sqltools.extract_sql(r or ""), "seed_sql": sql, "variation": k, "question": ""}
            for k, r in zip(kinds, replies, strict=True)
        ]
        return self.check_output(out)


class QuestionGenerator(_SchemaLLM):
    """Writes natural-language questions for SQL queries in several styles (formal, colloquial,
    imperative, vague, descriptive, multi-turn).

    A row that already has a question keeps it (``question_style: original``) and, with
    ``existing: keep``, gets no new one; with ``keep_and_add`` it also gets ``n`` new ones.
    Rows without a question get ``n``. Styles are picked per query from ``styles`` (stable:
    the same query gets the same styles on a re-run). An empty reply or one that is SQL is a
    failure record (``prepflow retry`` asks again), never a silently missing row.
    """

    kind = Kind.GENERATE
    inputs = (
        Column("sql", "string", "the query"),
        Column("question", "string", "an existing question", optional=True),
        *DB_COLUMNS,
    )
    outputs = (
        Column("question", "string", "the question"),
        Column("question_style", "string", "original or the style it was written in"),
    )
    template = PromptTemplate(QUESTION_PROMPT, "You write questions that people ask about data.")
    template_variables = ("schema", "dialect", "style")
    max_tokens = 200

    class Params(DatabaseLLMParams):
        n: int = Field(1, ge=1, le=len(STYLES), description="new questions per query")
        styles: list[Literal[tuple(STYLES)]] = Field(  # type: ignore[valid-type]
            list(STYLES), min_length=1, description="styles to draw from"
        )
        existing: Literal["keep", "keep_and_add"] = Field(
            "keep", description="rows that have a question: keep it only, or also add new ones"
        )

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        sql = row[self.col("sql")]
        existing = row.get(self.col("question")) or ""
        out = [{"question": existing, "question_style": "original"}] if existing else []
        if existing and self.params.existing == "keep":
            return self.check_output(out)
        ctx = await self.schema_context(row, sql=sql)
        styles = self.params.styles
        start = zlib.crc32(sql.encode())
        picked = [styles[(start + i) % len(styles)] for i in range(min(self.params.n, len(styles)))]
        replies = await asyncio.gather(
            *(self.chat(self.prompt_template.messages(**ctx, style=STYLES[s])) for s in picked)
        )
        for style, reply in zip(picked, replies, strict=True):
            text = reply_text(reply.text)
            if sqltools.extract_sql(text) and text.lstrip().upper().startswith(
                ("SELECT", "WITH", "```")
            ):
                raise ValueError(f"the {style} question is SQL, not a question: {text[:80]!r}")
            out.append({"question": text, "question_style": style})
        return self.check_output(out)


class CorrespondenceVerdict(BaseModel):
    reason: str = Field(..., max_length=400)
    matches: bool


class QuestionSQLJudge(_SchemaLLM):
    """Keeps (question, SQL) pairs an LLM judge finds to correspond: the query returns exactly
    what the question asks (data, conditions, grouping, ordering, limit). Structured output;
    the drop reason is ``question and SQL differ: <the judge's reason>``."""

    kind = Kind.FILTER
    inputs = (
        Column("question", "string", "the question"),
        Column("sql", "string", "the query"),
        *DB_COLUMNS,
    )
    template = PromptTemplate(JUDGE_PROMPT, "You are a careful, strict reviewer of SQL.")
    schema = CorrespondenceVerdict
    max_tokens = 200

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        ctx = await self.schema_context(row, row[self.col("question")], row[self.col("sql")])
        return self.checked_parse(row, await self.chat(self.prompt_template.messages(**ctx)))

    def parse(self, row: dict[str, Any], response: Any) -> Any:
        verdict = response.parsed
        return verdict.matches, f"question and SQL differ: {verdict.reason}"


class SQLPredictor(_SchemaLLM):
    """The model under evaluation answers each question with SQL (``pred_sql``), given the
    schema. A reply without SQL gives ``pred_sql`` = "": it is scored wrong (``pred error``),
    not retried, as an evaluation must count it."""

    kind = Kind.GENERATE
    inputs = (Column("question", "string", "the question"), *DB_COLUMNS)
    outputs = (Column("pred_sql", "string", "the model's SQL ('' when it gave none)"),)
    template = PromptTemplate(PREDICT_PROMPT, SQL_SYSTEM)
    max_tokens = 400

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        ctx = await self.schema_context(row, row[self.col("question")])
        (reply,) = await reply_texts([self.chat(self.prompt_template.messages(**ctx))])
        return self.check_output({"pred_sql": sqltools.extract_sql(reply or "")})
