"""Database access shared by the Text-to-SQL operators: through the run context only."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.context import Database
from prepflow.core.errors import ConfigError
from prepflow.core.llm import LLMParams
from prepflow.core.operator import Params, Requirements
from prepflow.operators.text2sql.judge import ExecutionJudge
from prepflow.operators.text2sql.schema_text import link_tables, render_schema

SQLGLOT = Requirements(packages=("sqlglot",), extra="text2sql")
SQLGLOT_LLM = Requirements(llm=True, packages=("sqlglot",), extra="text2sql")

DB_COLUMNS = (
    Column("db_id", "string", "the database's id in a directory or Spider layout", optional=True),
    Column(
        "database",
        "string",
        "the row's database (file, directory or URL), over the 'database' parameter",
        optional=True,
    ),
)
_DATABASE = Field(
    None,
    description="the database: a SQLite file, a directory or Spider/BIRD layout (rows pick one "
    "with db_id), or a postgresql:// URL; a row's 'database' column takes precedence",
)
_TIMEOUT = Field(5.0, gt=0, description="statement time limit in seconds")
_MAX_ROWS = Field(1000, ge=1, description="most rows a statement may return")


class DatabaseParams(Params):
    database: str | None = _DATABASE
    timeout_s: float = _TIMEOUT
    max_rows: int = _MAX_ROWS


class DatabaseLLMParams(LLMParams):
    database: str | None = _DATABASE
    timeout_s: float = _TIMEOUT
    max_rows: int = _MAX_ROWS
    max_tables: int = Field(
        12, ge=1, description="largest schema shown whole; larger ones show only linked tables"
    )


class DatabaseAccess:
    """Mixin: the row's database, its schema text and an execution judge, opened through
    ``ctx.database`` (the engine caches and closes them)."""

    name: str
    params: Any
    col: Any  # Operator.col
    _db_ctx: Any = None

    def setup_database(self, ctx: Any) -> None:
        if not callable(getattr(ctx, "database", None)):
            raise ConfigError(f"{self.name} needs databases, but the run context has no database()")
        self._db_ctx = ctx
        self._judges: dict[tuple[str, str | None], ExecutionJudge] = {}
        self._schemas: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._db_lock = threading.Lock()

    def database_key(self, row: dict[str, Any]) -> tuple[str, str | None]:
        source = row.get(self.col("database")) or self.params.database
        if not source:
            raise ValueError(
                f"{self.name}: no database: set the 'database' parameter or give rows a "
                "'database' column"
            )
        return str(source), row.get(self.col("db_id")) or None

    def database_for(self, row: dict[str, Any]) -> Database:
        if self._db_ctx is None:
            raise ConfigError(f"{self.name}: setup(ctx) must run before the first batch")
        return self._db_ctx.database(*self.database_key(row))

    def judge_for(self, row: dict[str, Any]) -> ExecutionJudge:
        key = self.database_key(row)
        with self._db_lock:
            judge = self._judges.get(key)
        if judge is None:
            judge = ExecutionJudge(
                self.database_for(row),
                timeout_s=self.params.timeout_s,
                max_rows=self.params.max_rows,
            )
            with self._db_lock:
                judge = self._judges.setdefault(key, judge)
        return judge

    def schema_for(self, row: dict[str, Any]) -> dict[str, Any]:
        key = self.database_key(row)
        with self._db_lock:
            found = self._schemas.get(key)
        if found is None:
            found = self.database_for(row).schema()
            with self._db_lock:
                self._schemas[key] = found
        return found

    def schema_prompt(
        self, row: dict[str, Any], question: str = "", sql_tables: tuple[str, ...] = ()
    ) -> str:
        """The schema as CREATE TABLE text: whole, or the linked tables of a large one."""
        schema = self.schema_for(row)
        tables = link_tables(schema, question, sql_tables, self.params.max_tables)
        return render_schema(schema, tables)
