"""PostgreSQL databases through psycopg, every statement in a read-only transaction.

Each statement runs in its own ``BEGIN READ ONLY`` transaction with a local ``statement_timeout``
and is rolled back afterwards; the session itself defaults to read-only transactions. Queries
(SELECT, WITH, VALUES, TABLE) are read through a server-side cursor, so the row and byte caps
stop the transfer instead of trimming a result already held in memory; other statements
(EXPLAIN, SHOW) are run as they are and refused by the server when they would write. Connect as
a role that may only read (``GRANT SELECT``): the read-only transaction stops writes, the role
stops reading server files and other sessions.

Values come back as plain Python values: numerics as float, dates and times as ISO strings,
UUIDs as strings, bytea as bytes (the same kinds SQLite gives, so results compare alike).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import threading
import time
import uuid
from typing import Any

from prepflow.core.context import QueryResult, QueryStatus
from prepflow.core.errors import ConfigError
from prepflow.sandbox.sql import schema as schemas
from prepflow.sandbox.sql.sqlite import SQLLimits

_QUERY_START = re.compile(
    r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*\(*\s*(select|with|values|table)\b", re.I | re.S
)
_DENIED_STATES = {"25006", "42501"}  # read_only_sql_transaction, insufficient_privilege
_CANCELED = "57014"


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str | bytes):
        return v
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, memoryview):
        return v.tobytes()
    if isinstance(v, uuid.UUID | dt.timedelta):
        return str(v)
    return v


def _row_bytes(row: tuple) -> int:
    return 8 * len(row) + sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)


class PostgresDatabase:
    """A PostgreSQL database at ``url`` (``postgresql://user:pass@host:port/db``), read-only."""

    dialect = "postgres"

    def __init__(self, url: str, *, name: str | None = None, limits: SQLLimits | None = None):
        try:
            import psycopg  # noqa: F401
        except ModuleNotFoundError:
            raise ConfigError(
                "PostgreSQL databases need psycopg: pip install 'prepflow[text2sql]'"
            ) from None
        self.url = url
        self.name = name or url.rsplit("/", 1)[-1].split("?", 1)[0] or "postgres"
        self.limits = limits or SQLLimits()
        self._conn: Any = None
        self._lock = threading.Lock()
        self._schema: dict[str, Any] | None = None

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"PostgresDatabase(name={self.name!r})"

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.url,
                    autocommit=True,  # each statement: our own BEGIN READ ONLY ... ROLLBACK
                    connect_timeout=10,
                    options="-c default_transaction_read_only=on",
                    application_name="prepflow",
                )
            except psycopg.Error as e:
                raise ConfigError(
                    f"cannot connect to PostgreSQL database {self.name!r}: {e}"
                ) from None
        return self._conn

    def execute(
        self, sql: str, *, timeout_s: float | None = None, max_rows: int | None = None
    ) -> QueryResult:
        import psycopg

        timeout = self.limits.timeout_s if timeout_s is None else timeout_s
        cap = self.limits.max_rows if max_rows is None else max_rows
        if not isinstance(sql, str) or not sql.strip():
            return QueryResult(QueryStatus.ERROR, error="empty statement")
        started = time.monotonic()
        with self._lock:
            conn = self._connection()
            try:
                status, columns, rows, error = self._run(conn, sql, timeout, cap, started)
            except psycopg.OperationalError as e:
                if not conn.closed and e.sqlstate is None:
                    conn.close()  # the connection is gone: reconnect next time
                status, columns, rows, error = self._failure(e)
            except psycopg.Error as e:
                status, columns, rows, error = self._failure(e)
            finally:
                if not conn.closed:
                    conn.rollback()
        return QueryResult(status, columns, rows, error, time.monotonic() - started)

    def _run(self, conn: Any, sql: str, timeout: float, cap: int, started: float) -> tuple:
        conn.execute("BEGIN READ ONLY")
        conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
        query = bool(_QUERY_START.match(sql))
        cursor = conn.cursor(name="prepflow_query") if query else conn.cursor()
        try:
            cursor.execute(sql)
            if cursor.description is None:
                return QueryStatus.OK, (), [], None
            columns = tuple(d.name for d in cursor.description)
            rows: list[tuple] = []
            size = 0
            while batch := cursor.fetchmany(min(1000, cap + 1)):
                for raw in batch:
                    row = tuple(_plain(v) for v in raw)
                    if len(rows) >= cap:
                        return (
                            QueryStatus.ROW_LIMIT,
                            columns,
                            rows,
                            f"more than max_rows={cap} rows",
                        )
                    size += _row_bytes(row)
                    if size > self.limits.max_bytes:
                        return (
                            QueryStatus.SIZE_LIMIT,
                            columns,
                            rows,
                            f"result larger than max_bytes={self.limits.max_bytes}",
                        )
                    rows.append(row)
                if time.monotonic() - started > timeout:
                    return QueryStatus.TIMEOUT, columns, [], "statement timeout"
            return QueryStatus.OK, columns, rows, None
        finally:
            cursor.close()

    @staticmethod
    def _failure(e: Any) -> tuple:
        state = getattr(e, "sqlstate", None)
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if state == _CANCELED:
            return QueryStatus.TIMEOUT, (), [], "statement timeout"
        if state in _DENIED_STATES:
            return QueryStatus.DENIED, (), [], f"denied: {message}"
        if state == "53200":  # out_of_memory
            return QueryStatus.MEMORY, (), [], message
        return QueryStatus.ERROR, (), [], message

    def schema(self) -> dict[str, Any]:
        """Tables and views of the visible schemas (not pg_catalog / information_schema)."""
        if self._schema is None:
            self._schema = self._read_schema()
        return self._schema

    def _query(self, sql: str) -> list[tuple]:
        result = self.execute(sql, timeout_s=max(self.limits.timeout_s, 30.0), max_rows=1_000_000)
        if not result.ok:
            raise ConfigError(f"reading the schema of {self.name!r} failed: {result.error}")
        return result.rows

    def _read_schema(self) -> dict[str, Any]:
        user_schemas = (
            "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
        )
        rels = self._query(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
            f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'm', 'p') AND {user_schemas} "
            "ORDER BY n.nspname, c.relname"
        )
        cols = self._query(
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
            "a.attnotnull, COALESCE((SELECT k.o FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
            "WHERE k.n = a.attnum), 0) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
            f"WHERE a.attnum > 0 AND NOT a.attisdropped AND {user_schemas} ORDER BY a.attnum"
        )
        fks = self._query(
            "SELECT n.nspname, c.relname, con.conname, "
            "ARRAY(SELECT attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o) "
            "  JOIN pg_attribute ON attrelid = con.conrelid AND attnum = k.n ORDER BY o), "
            "r.relname, ARRAY(SELECT attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o) "
            "  JOIN pg_attribute ON attrelid = con.confrelid AND attnum = k.n ORDER BY o) "
            "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class r ON r.oid = con.confrelid "
            f"WHERE con.contype = 'f' AND {user_schemas} ORDER BY con.conname"
        )
        shown = {(s, t) for s, t, _ in rels}
        many_schemas = len({s for s, _ in shown}) > 1

        def label(schema: str, name: str) -> str:
            return f"{schema}.{name}" if many_schemas or schema != "public" else name

        def quoted(schema: str, name: str) -> str:
            return ".".join('"' + p.replace('"', '""') + '"' for p in (schema, name))

        tables = []
        for s, t, kind in rels:
            columns = []
            for cs, ct, name, type_, not_null, pk in cols:
                if (cs, ct) != (s, t):
                    continue
                samples = self._samples(quoted(s, t), name)
                columns.append(schemas.column(name, type_, bool(not_null), int(pk), samples))
            count = self.execute(f"SELECT count(*) FROM {quoted(s, t)}")
            foreign = [
                {"columns": list(a), "ref_table": ref, "ref_columns": list(b)}
                for fs, ft, _, a, ref, b in fks
                if (fs, ft) == (s, t)
            ]
            tables.append(
                schemas.table(
                    label(s, t),
                    "table" if kind in ("r", "p") else "view",
                    columns,
                    foreign,
                    count.rows[0][0] if count.ok else None,
                )
            )
        return {"name": self.name, "dialect": self.dialect, "tables": tables}

    def _samples(self, table: str, column: str) -> list[Any]:
        k = self.limits.schema_samples
        if not k:
            return []
        col = '"' + column.replace('"', '""') + '"'
        result = self.execute(
            f"SELECT DISTINCT {col} FROM {table} WHERE {col} IS NOT NULL LIMIT {k}", max_rows=k
        )
        if not result.ok:
            return []
        return [
            (v[:64] if isinstance(v, str) else v)
            for (v,) in result.rows
            if not isinstance(v, bytes | list | dict)
        ]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._conn = None
