"""SQL text operators: parse check, normalization, Spider difficulty (sqlglot, no database)."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import EvaluateOperator, FilterOperator, Params, RefineOperator
from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql._db import SQLGLOT

DIALECT = Field("sqlite", description="sqlglot dialect of the SQL: sqlite, postgres, mysql...")


def _set(batch: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in batch.column_names:
        return batch.set_column(batch.column_names.index(name), name, values)
    return batch.append_column(name, values)


class SQLParseFilter(FilterOperator):
    """Keeps rows whose SQL is one query that parses in the dialect (SELECT, a set operation of
    SELECTs, VALUES, with or without WITH).

    Drop reasons: ``sql does not parse; line L, column C: ...``, ``empty SQL``, ``not a query:
    Insert`` (a write or other statement).
    """

    domain = "text2sql"
    requires = SQLGLOT
    inputs = (Column("sql", "string", "the SQL query"),)

    class Params(Params):
        dialect: str = DIALECT

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        reasons = [self._problem(s) for s in batch.column(self.col("sql")).to_pylist()]
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())

    def _problem(self, sql: str | None) -> str | None:
        try:
            tree = sqltools.parse(sql or "", self.params.dialect)
        except sqltools.SQLParseError as e:
            return f"sql does not parse; {e}" if str(e) != "empty SQL" else "empty SQL"
        if not sqltools.is_query(tree):
            return f"not a query: {type(tree).__name__}"
        return None


class SQLNormalizer(RefineOperator):
    """Rewrites SQL in a canonical spelling (keywords upper case, one spacing, quoting as the
    dialect needs, comments dropped), or transpiles it to another dialect (``write``).

    SQL that does not parse raises, so the row becomes a failure record: run
    :class:`SQLParseFilter` first to drop such rows with a reason instead.
    """

    domain = "text2sql"
    requires = SQLGLOT
    inputs = (Column("sql", "string", "the SQL query"),)
    outputs = (Column("sql", "string", "the normalized query"),)

    class Params(Params):
        dialect: str = DIALECT
        write: str | None = Field(None, description="dialect to write (default: the same)")
        pretty: bool = Field(False, description="multi-line, indented layout")

    def process(self, batch: pa.Table) -> pa.Table:
        p = self.params
        out = [
            sqltools.normalize(s or "", p.dialect, write=p.write, pretty=p.pretty)
            for s in batch.column(self.col("sql")).to_pylist()
        ]
        return _set(batch, self.col("sql"), pa.array(out, pa.string()))


class SQLComponentDifficulty(EvaluateOperator):
    """Labels each query easy / medium / hard / extra by Spider's hardness rules on its
    components (joins, conditions, grouping, ordering, nesting, set operations, aggregates).

    Writes ``difficulty`` and ``components`` (Spider's three counts, for inspection). SQL that
    does not parse raises (a failure record): filter with :class:`SQLParseFilter` first.
    """

    domain = "text2sql"
    requires = SQLGLOT
    inputs = (Column("sql", "string", "the SQL query"),)
    outputs = (
        Column("difficulty", "string", "easy, medium, hard or extra"),
        Column("components", "struct", "{component1, component2, others} as Spider counts them"),
    )

    class Params(Params):
        dialect: str = DIALECT

    def process(self, batch: pa.Table) -> pa.Table:
        labels, parts = [], []
        for sql in batch.column(self.col("sql")).to_pylist():
            c = sqltools.components(sql or "", self.params.dialect)
            labels.append(sqltools.hardness(sql or "", self.params.dialect))
            parts.append(
                {"component1": c.component1, "component2": c.component2, "others": c.others}
            )
        batch = _set(batch, self.col("difficulty"), pa.array(labels, pa.string()))
        return _set(batch, self.col("components"), pa.array(parts))
