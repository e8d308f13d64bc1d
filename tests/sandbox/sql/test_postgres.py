"""PostgreSQL through psycopg against a real server started by the tests on 127.0.0.1."""

from __future__ import annotations

import pytest

from prepflow.core.context import QueryStatus
from prepflow.sandbox.sql import open_database

from .conftest import TEXT2SQL_DATA

TABLES = """
CREATE TABLE airlines (carrier text PRIMARY KEY, name text NOT NULL);
CREATE TABLE flights (
  id integer PRIMARY KEY, carrier text REFERENCES airlines (carrier), origin text, dest text,
  dep_delay integer, distance numeric(8, 1), time_hour timestamp);
"""


@pytest.fixture(scope="module")
def flights_pg(postgres) -> str:
    """The flights test data (airlines and 300 flights) in a database 'flights', readable by a
    role 'reader' that may only SELECT; returns the reader's URL."""
    import psycopg

    from prepflow.sandbox.sql import open_database as open_db

    src = open_db(TEXT2SQL_DATA, "flights")
    airlines = src.execute("SELECT carrier, name FROM airlines").rows
    flights = src.execute(
        "SELECT id, carrier, origin, dest, dep_delay, distance, replace(time_hour, 'Z', '') "
        "FROM flights ORDER BY id LIMIT 300"
    ).rows
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS flights")
        admin.execute("CREATE DATABASE flights")
        admin.execute("DROP ROLE IF EXISTS reader")
        admin.execute("CREATE ROLE reader LOGIN")
    with psycopg.connect(postgres.url(db="flights"), autocommit=True) as admin:
        admin.execute(TABLES)
        with admin.cursor() as cur:
            cur.executemany("INSERT INTO airlines VALUES (%s, %s)", airlines)
            cur.executemany("INSERT INTO flights VALUES (%s, %s, %s, %s, %s, %s, %s)", flights)
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    return postgres.url(user="reader", db="flights")


def test_query_and_plain_values(flights_pg: str) -> None:
    db = open_database(flights_pg)
    assert db.dialect == "postgres" and db.name == "flights"
    r = db.execute(
        "SELECT carrier, count(*) AS n, avg(distance) FROM flights GROUP BY carrier ORDER BY n DESC LIMIT 1"
    )
    assert r.ok and r.columns == ("carrier", "n", "avg")
    carrier, n, avg = r.rows[0]
    assert isinstance(carrier, str) and isinstance(n, int) and isinstance(avg, float)
    when = db.execute("SELECT time_hour FROM flights WHERE id = 1").rows[0][0]
    assert when == "2013-01-01T10:00:00"


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO airlines VALUES ('ZZ', 'x')",
        "UPDATE flights SET dep_delay = 0",
        "DELETE FROM flights",
        "DROP TABLE flights",
        "CREATE TABLE t (x int)",
        "WITH gone AS (DELETE FROM flights RETURNING id) SELECT count(*) FROM gone",
        "SELECT pg_read_file('/etc/passwd')",
    ],
)
def test_writes_are_refused(sql: str, flights_pg: str) -> None:
    db = open_database(flights_pg)
    r = db.execute(sql)
    assert r.status in (QueryStatus.DENIED, QueryStatus.ERROR), r
    assert r.status is QueryStatus.DENIED or "data-modifying" in r.error, r
    assert db.execute("SELECT count(*) FROM flights").rows == [(300,)]


def test_even_a_superuser_connection_cannot_write(postgres, flights_pg: str) -> None:
    db = open_database(postgres.url(db="flights"))
    r = db.execute("DELETE FROM airlines")
    assert r.status is QueryStatus.DENIED and "read-only transaction" in r.error
    escape = db.execute("SET TRANSACTION READ WRITE")
    assert (
        escape.status is not QueryStatus.OK
        or db.execute("DELETE FROM airlines").status is QueryStatus.DENIED
    )
    assert db.execute("SELECT count(*) FROM airlines").rows[0][0] > 10


def test_statement_timeout_and_row_cap(flights_pg: str) -> None:
    db = open_database(flights_pg)
    slow = db.execute("SELECT pg_sleep(5)", timeout_s=0.3)
    assert slow.status is QueryStatus.TIMEOUT
    cross = db.execute(
        "SELECT count(*) FROM flights a, flights b, flights c, flights d", timeout_s=0.3
    )
    assert cross.status is QueryStatus.TIMEOUT
    endless = db.execute(
        "SELECT a.id, b.id, c.id FROM flights a, flights b, flights c", max_rows=50
    )
    assert endless.status is QueryStatus.ROW_LIMIT and len(endless.rows) == 50
    assert db.execute("SELECT 1").rows == [(1,)]  # the session is usable after each


def test_errors_and_explain(flights_pg: str) -> None:
    db = open_database(flights_pg)
    bad = db.execute("SELECT nope FROM flights")
    assert bad.status is QueryStatus.ERROR and "nope" in bad.error
    plan = db.execute("EXPLAIN SELECT * FROM flights WHERE dest = 'IAH'")
    assert plan.ok and "Seq Scan" in plan.rows[0][0]


def test_schema_with_keys_types_and_samples(flights_pg: str) -> None:
    schema = open_database(flights_pg).schema()
    tables = {t["name"]: t for t in schema["tables"]}
    assert set(tables) == {"airlines", "flights"}
    flights = tables["flights"]
    assert flights["rows"] == 300 and flights["primary_key"] == ["id"]
    assert flights["foreign_keys"] == [
        {"columns": ["carrier"], "ref_table": "airlines", "ref_columns": ["carrier"]}
    ]
    types = {c["name"]: c["type"] for c in flights["columns"]}
    assert (
        types["distance"] == "numeric(8,1)" and types["time_hour"] == "timestamp without time zone"
    )
    carrier = next(c for c in tables["airlines"]["columns"] if c["name"] == "carrier")
    assert carrier["not_null"] and len(carrier["samples"]) == 3


def test_password_never_in_repr(postgres) -> None:
    db = open_database(postgres.url().replace("admin@", "admin:s3cret@"))
    assert "s3cret" not in repr(db)


def test_execution_judge_on_postgres(flights_pg: str) -> None:
    from prepflow.operators.text2sql.judge import ExecutionJudge

    judge = ExecutionJudge(open_database(flights_pg), timeout_s=2)
    gold = "SELECT carrier, count(*) AS n FROM flights GROUP BY carrier ORDER BY n DESC"
    assert judge.judge(
        gold, "SELECT count(*), carrier FROM flights GROUP BY 2 ORDER BY 1 DESC"
    ).correct
    wrong = judge.judge(gold, "SELECT carrier, count(*) FROM flights GROUP BY carrier ORDER BY 2")
    assert (wrong.correct, wrong.reason) == (False, "different order")
    avg = judge.judge(
        "SELECT avg(distance) FROM flights", "SELECT sum(distance) / count(*) FROM flights"
    )
    assert avg.correct  # numeric (Decimal) results compare as numbers
    assert judge.judge(gold, "DELETE FROM flights").reason == "pred error"
