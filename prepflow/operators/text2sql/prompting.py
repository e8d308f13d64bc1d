"""Schema-linking prompts and chat-format training rows."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import GenerateOperator, Params
from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql._db import DB_COLUMNS, SQLGLOT, DatabaseAccess
from prepflow.operators.text2sql.schema_text import link_tables, render_schema
from prepflow.operators.text2sql.sql import _set

USER_TEMPLATE = """\
Database schema ({dialect}):

{schema}

Question: {question}

Write a {dialect} SQL query that answers the question."""


class SchemaPromptBuilder(DatabaseAccess, GenerateOperator):
    """Writes each row's database schema as prompt text (schema linking): ``CREATE TABLE``
    statements with types, primary and foreign keys and sample values. A schema of more than
    ``max_tables`` tables shows only the tables the row's SQL reads (when given), those whose
    names, columns or values share words with the question, and their foreign-key neighbours.

    Writes ``schema`` (the text) and ``schema_tables`` (the tables shown).
    """

    domain = "text2sql"
    requires = SQLGLOT
    inputs = (
        Column("question", "string", "the question (for linking)", optional=True),
        Column("sql", "string", "the SQL (its tables are always shown)", optional=True),
        *DB_COLUMNS,
    )
    outputs = (
        Column("schema", "string", "CREATE TABLE text of the linked tables"),
        Column("schema_tables", "list<string>", "the tables shown"),
    )

    class Params(Params):
        database: str | None = Field(None, description="the database (see the text2sql guide)")
        max_tables: int = Field(12, ge=1, description="largest schema shown whole")
        samples: bool = Field(True, description="show sample values as comments")

    def setup(self, ctx: Any) -> None:
        self.setup_database(ctx)

    def process(self, batch: pa.Table) -> pa.Table:
        texts, shown = [], []
        for row in batch.to_pylist():
            schema = self.schema_for(row)
            sql = row.get(self.col("sql")) or ""
            try:
                read = tuple(sqltools.tables_of(sql, schema["dialect"])) if sql else ()
            except sqltools.SQLParseError:
                read = ()
            tables = link_tables(
                schema, row.get(self.col("question")) or "", read, self.params.max_tables
            )
            texts.append(render_schema(schema, tables, samples=self.params.samples))
            shown.append(tables)
        batch = _set(batch, self.col("schema"), pa.array(texts, pa.string()))
        return _set(batch, self.col("schema_tables"), pa.array(shown, pa.list_(pa.string())))


class ToText2SQLChat(GenerateOperator):
    """Turns (schema, question, SQL, chain of thought) rows into chat training rows.

    ``messages``: an optional system message; the user turn with the schema and the question;
    the assistant turn with the chain of thought (which ends in the SQL) when ``include_cot``
    and the row has one, else the SQL alone in a ```sql block.
    """

    domain = "text2sql"
    inputs = (
        Column("schema", "string", "the schema text (SchemaPromptBuilder)"),
        Column("question", "string", "the question"),
        Column("sql", "string", "the gold SQL"),
        Column("cot", "string", "chain of thought ending in the SQL", optional=True),
    )
    outputs = (Column("messages", "list<struct>", "[{role, content}, ...]"),)

    class Params(Params):
        system_prompt: str | None = Field(
            "You are an expert data analyst who writes correct SQL.",
            description="system message (null for none)",
        )
        include_cot: bool = Field(True, description="answer with the chain of thought")
        dialect: str = Field("SQLite", description="dialect named in the user turn")

    def process(self, batch: pa.Table) -> pa.Table:
        p = self.params
        head = [{"role": "system", "content": p.system_prompt}] if p.system_prompt else []
        cot_col = self.col("cot")
        out = []
        for row in batch.to_pylist():
            user = USER_TEMPLATE.format(
                dialect=p.dialect,
                schema=row[self.col("schema")],
                question=row[self.col("question")],
            )
            cot = row.get(cot_col) if cot_col in row else None
            answer = cot if (p.include_cot and cot) else f"```sql\n{row[self.col('sql')]}\n```"
            out.append(
                [*head, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            )
        return _set(batch, self.col("messages"), pa.array(out))
