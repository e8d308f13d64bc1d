"""Execution operators: does the SQL run, within the limits, with the gold result?"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.context import QueryResult, QueryStatus
from prepflow.core.operator import EvaluateOperator, FilterOperator
from prepflow.operators.text2sql._db import DB_COLUMNS, SQLGLOT, DatabaseAccess, DatabaseParams
from prepflow.operators.text2sql.sql import _set

#: Statements in flight per batch: the database layer's worker processes (2 per process by
#: default) stay busy while this thread waits on one of them.
PARALLEL = 4


def checked_rows(
    check: Callable[[dict[str, Any]], Any], rows: list[dict[str, Any]], columns: list[str]
) -> list[Any]:
    """``check(row)`` for every row, in order. ``check`` reads only ``columns``: rows equal on
    them (the same query on the same database, which is read-only) are checked once, and the
    distinct ones a few at a time."""
    keys = [tuple(row.get(c) for c in columns) for row in rows]
    first: dict[tuple, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    todo = list(first.values())
    with ThreadPoolExecutor(PARALLEL) as pool:
        done = dict(zip(todo, pool.map(lambda i: check(rows[i]), todo), strict=True))
    return [done[first[k]] for k in keys]


def describe(result: QueryResult) -> str:
    """``status: error`` of a failed statement, the status named once."""
    error = result.error or ""
    prefix = f"{result.status.value}: "
    return error if error.startswith(prefix) else f"{prefix}{error}".rstrip(": ")


class _DatabaseFilter(DatabaseAccess, FilterOperator):
    abstract = True
    domain = "text2sql"
    requires = SQLGLOT
    Params = DatabaseParams

    def setup(self, ctx: Any) -> None:
        self.setup_database(ctx)

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        columns = [self.col(c.name) for c in self.inputs]
        reasons = checked_rows(self.problem, batch.to_pylist(), columns)
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())

    def problem(self, row: dict[str, Any]) -> str | None:
        raise NotImplementedError


class SQLExecutabilityFilter(_DatabaseFilter):
    """Keeps SQL the database can prepare: ``EXPLAIN`` compiles it against the schema (unknown
    tables and columns, type errors, writes) without running it.

    Drop reasons: ``not executable: error: no such column: nme`` or ``... denied: ...``.
    """

    inputs = (Column("sql", "string", "the SQL query"), *DB_COLUMNS)

    def problem(self, row: dict[str, Any]) -> str | None:
        sql = row.get(self.col("sql")) or ""
        if not sql.strip():
            return "not executable: empty SQL"
        db = self.database_for(row)
        result = db.execute(f"EXPLAIN {sql.strip().rstrip(';')}", timeout_s=self.params.timeout_s)
        if result.ok:
            return None
        return f"not executable: {describe(result)}"


class SQLExecutionFilter(_DatabaseFilter):
    """Keeps SQL that runs without error within the limits and (unless ``allow_empty``) returns
    rows.

    Drop reasons name the rule and the threshold: ``timeout: over timeout_s=5``, ``row-limit:
    more than max_rows=1000 rows``, ``size-limit: ...``, ``memory: ...``, ``error: no such
    table: x``, ``denied: ...``, ``empty result (allow_empty=false)``.
    """

    inputs = (Column("sql", "string", "the SQL query"), *DB_COLUMNS)

    class Params(DatabaseParams):
        allow_empty: bool = Field(False, description="keep queries that return no rows")

    def problem(self, row: dict[str, Any]) -> str | None:
        result = self.judge_for(row).run(row.get(self.col("sql")) or "")
        if result.status is QueryStatus.TIMEOUT:
            return f"timeout: over timeout_s={self.params.timeout_s:g}"
        if result.status is QueryStatus.ROW_LIMIT:
            return f"row-limit: more than max_rows={self.params.max_rows} rows"
        if not result.ok:
            return describe(result)
        if not result.rows and not self.params.allow_empty:
            return "empty result (allow_empty=false)"
        return None


class SQLResultMatchFilter(_DatabaseFilter):
    """Keeps rows whose SQL returns the gold SQL's result, by the one result comparator
    (multisets; order only when the gold has a top-level ORDER BY, ties allowed; columns matched
    by values; close floats).

    Drop reasons: ``gold error: ...``, ``pred error: ...``, ``timeout: ...``, ``limit: ...``,
    ``different rows: ...``, ``different order: ...``.
    """

    inputs = (
        Column("sql", "string", "the SQL to check"),
        Column("gold_sql", "string", "the reference SQL"),
        *DB_COLUMNS,
    )

    def problem(self, row: dict[str, Any]) -> str | None:
        verdict = self.judge_for(row).judge(
            row[self.col("gold_sql")] or "", row.get(self.col("sql")) or ""
        )
        return None if verdict.correct else str(verdict)


class SQLExecutionMatch(DatabaseAccess, EvaluateOperator):
    """Execution accuracy per row: runs the predicted and the gold SQL and writes ``correct``
    and ``reason`` (``gold error``, ``pred error``, ``timeout``, ``limit``, ``different rows``,
    ``different order``; '' when correct) and ``detail``. Never drops: this is the evaluator
    behind ``prepflow eval text2sql`` and the text2sql-eval pipeline."""

    domain = "text2sql"
    requires = SQLGLOT
    Params = DatabaseParams
    inputs = (
        Column("pred_sql", "string", "the predicted SQL"),
        Column("gold_sql", "string", "the reference SQL"),
        *DB_COLUMNS,
    )
    outputs = (
        Column("correct", "bool", "the predicted result equals the gold result"),
        Column("reason", "string", "why not ('' when correct)"),
        Column("detail", "string", "what differed"),
    )

    def setup(self, ctx: Any) -> None:
        self.setup_database(ctx)

    def process(self, batch: pa.Table) -> pa.Table:
        verdicts = checked_rows(
            lambda row: self.judge_for(row).judge(
                row[self.col("gold_sql")] or "", row.get(self.col("pred_sql")) or ""
            ),
            batch.to_pylist(),
            [self.col(c.name) for c in self.inputs],
        )
        batch = _set(
            batch, self.col("correct"), pa.array([v.correct for v in verdicts], pa.bool_())
        )
        batch = _set(
            batch, self.col("reason"), pa.array([v.reason or "" for v in verdicts], pa.string())
        )
        return _set(batch, self.col("detail"), pa.array([v.detail for v in verdicts], pa.string()))
