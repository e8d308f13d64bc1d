"""SQLite databases: the read-only guarantees, limits, worker replacement and schemas."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from prepflow.core.context import QueryStatus
from prepflow.core.errors import ConfigError
from prepflow.sandbox.sql import SQLiteDatabase, open_database
from prepflow.sandbox.sql.sqlite import WorkerDied, pool_for

from .conftest import TEXT2SQL_DATA

CROSS_JOIN = "SELECT count(*) FROM track a, track b, track c"
COUNT_FOREVER = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
)
ROWS_FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def chinook_copy(chinook: Path, tmp_path: Path) -> Path:
    target = tmp_path / "chinook.sqlite"
    shutil.copy(chinook, target)
    return target


def test_query_returns_columns_and_rows(chinook: Path) -> None:
    db = open_database(chinook)
    r = db.execute("SELECT name AS artist FROM artist ORDER BY id LIMIT 3")
    assert r.status is QueryStatus.OK and r.error is None
    assert r.columns == ("artist",)
    assert r.rows == [("AC/DC",), ("Accept",), ("Aerosmith",)]
    assert db.name == "chinook" and db.dialect == "sqlite"


WRITES = [
    "INSERT INTO artist (id, name) VALUES (9999, 'x')",
    "UPDATE artist SET name = 'x'",
    "DELETE FROM artist",
    "DROP TABLE artist",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE INDEX i ON artist (name)",
    "ALTER TABLE artist ADD COLUMN y",
    "ANALYZE",
    "ATTACH DATABASE '{tmp}/other.db' AS other",
    "VACUUM INTO '{tmp}/copy.db'",
    "PRAGMA query_only = OFF",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA writable_schema = ON",
    "PRAGMA user_version = 7",
    "SELECT load_extension('{tmp}/evil.so')",
    "BEGIN",
]


@pytest.mark.parametrize("sql", WRITES)
def test_every_write_attach_pragma_and_extension_is_denied(
    sql: str, chinook_copy: Path, tmp_path: Path
) -> None:
    before = digest(chinook_copy)
    files_before = sorted(os.listdir(tmp_path))
    r = open_database(chinook_copy).execute(sql.format(tmp=tmp_path))
    assert r.status is QueryStatus.DENIED, (sql, r)
    assert r.error.startswith("denied: ")
    assert digest(chinook_copy) == before
    assert sorted(os.listdir(tmp_path)) == files_before  # nothing attached, vacuumed or written


def test_reindex_is_denied(tmp_path: Path) -> None:
    flights = tmp_path / "flights.sqlite"  # chinook has no index, so REINDEX does nothing there
    shutil.copy(TEXT2SQL_DATA / "database" / "flights" / "flights.sqlite", flights)
    before = digest(flights)
    assert open_database(flights).execute("REINDEX").status is QueryStatus.DENIED
    assert digest(flights) == before


def test_denial_names_what_was_refused(chinook: Path, tmp_path: Path) -> None:
    db = open_database(chinook)
    assert "ATTACH" in db.execute(f"ATTACH '{tmp_path}/x.db' AS x").error
    assert "load_extension" in db.execute("SELECT load_extension('x')").error
    assert "PRAGMA query_only OFF" in db.execute("PRAGMA query_only=OFF").error


def test_reading_pragmas_are_allowed(chinook: Path) -> None:
    r = open_database(chinook).execute("PRAGMA table_info(artist)")
    assert r.ok and [row[1] for row in r.rows] == ["id", "name"]


def test_one_statement_per_call(chinook: Path) -> None:
    r = open_database(chinook).execute("SELECT 1; DROP TABLE artist")
    assert r.status is QueryStatus.ERROR and "one statement" in r.error


def test_syntax_error_is_an_error(chinook: Path) -> None:
    r = open_database(chinook).execute("SELEC name FROM artist")
    assert r.status is QueryStatus.ERROR and "syntax error" in r.error


@pytest.mark.parametrize("sql", [CROSS_JOIN, COUNT_FOREVER])
def test_pathological_queries_end_as_timeouts(sql: str, chinook: Path) -> None:
    db = open_database(chinook)
    r = db.execute(sql, timeout_s=0.3)
    assert r.status is QueryStatus.TIMEOUT and r.rows == []
    assert db.execute("SELECT count(*) FROM artist").rows == [(275,)]  # the worker lives on


def test_endless_rows_stop_at_the_row_cap(chinook: Path) -> None:
    r = open_database(chinook).execute(ROWS_FOREVER, max_rows=500)
    assert r.status is QueryStatus.ROW_LIMIT
    assert len(r.rows) == 500 and r.rows[:2] == [(1,), (2,)]
    assert "max_rows=500" in r.error


def test_result_size_cap(chinook: Path) -> None:
    db = open_database(chinook, max_bytes=10_000)
    r = db.execute("SELECT name FROM track")
    assert r.status is QueryStatus.SIZE_LIMIT and "max_bytes=10000" in r.error
    assert 0 < len(r.rows) < 3503


def test_huge_values_are_refused(chinook: Path) -> None:
    r = open_database(chinook).execute("SELECT length(randomblob(1000000000))")
    assert r.status is QueryStatus.SIZE_LIMIT


def test_memory_hungry_query_ends_as_memory(chinook: Path) -> None:
    db = open_database(chinook, memory_mb=96, timeout_s=30)
    r = db.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
        "SELECT count(DISTINCT printf('%.200c', 'a') || x) FROM c"
    )
    assert r.status is QueryStatus.MEMORY, r
    assert db.execute("SELECT 1").ok


def test_parent_kills_a_worker_that_overruns_and_replaces_it(chinook: Path) -> None:
    db = open_database(chinook, workers=1, memory_mb=200)
    pool = pool_for(db.limits)
    replaced = pool.replaced
    with pytest.raises(WorkerDied) as e:  # the worker's own deadline is far: only the guard acts
        pool.call(("query", str(db.path), COUNT_FOREVER, 60.0, 10, 1 << 20), 0.3)
    assert e.value.status is QueryStatus.TIMEOUT
    assert pool.replaced == replaced + 1
    assert db.execute("SELECT count(*) FROM album").rows == [(347,)]


def test_dead_workers_are_replaced(chinook: Path) -> None:
    db = open_database(chinook, workers=1, memory_mb=201)
    pool = pool_for(db.limits)
    assert db.execute("SELECT 1").ok
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)  # dies while idle: replaced without failing a statement
    time.sleep(0.05)
    assert db.execute("SELECT 2").rows == [(2,)]
    (pid,) = pool.pids()
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()  # dies mid-statement
    r = db.execute(COUNT_FOREVER, timeout_s=20)
    assert r.status is QueryStatus.MEMORY and "died (signal SIGKILL)" in r.error
    assert db.execute("SELECT 3").rows == [(3,)]


def test_statements_run_concurrently_across_workers(chinook: Path) -> None:
    db = open_database(chinook, workers=2)
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(db.execute(CROSS_JOIN, timeout_s=0.3)))
        for _ in range(2)
    ] + [threading.Thread(target=lambda: results.append(db.execute("SELECT 1")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status.value for r in results) == ["ok", "timeout", "timeout"]


def test_schema_of_an_untyped_database_infers_types(chinook: Path) -> None:
    schema = open_database(chinook).schema()
    tables = {t["name"]: t for t in schema["tables"]}
    assert len(tables) == 11 and schema["dialect"] == "sqlite"
    album = tables["album"]
    assert album["rows"] == 347
    assert [(c["name"], c["type"]) for c in album["columns"]] == [
        ("id", "INTEGER"),
        ("artist", "INTEGER"),
        ("title", "TEXT"),
    ]
    assert album["columns"][2]["samples"][0] == "For Those About To Rock We Salute You"
    assert len(album["columns"][0]["samples"]) == 3


def test_schema_with_keys_and_foreign_keys() -> None:
    db = open_database(TEXT2SQL_DATA, "flights")
    tables = {t["name"]: t for t in db.schema()["tables"]}
    assert tables["weather"]["primary_key"] == ["origin", "time_hour"]
    fks = {(tuple(f["columns"]), f["ref_table"]) for f in tables["flights"]["foreign_keys"]}
    assert fks == {
        (("carrier",), "airlines"),
        (("tailnum",), "planes"),
        (("origin",), "airports"),
        (("dest",), "airports"),
    }
    baseball = {t["name"]: t for t in open_database(TEXT2SQL_DATA, "baseball").schema()["tables"]}
    assert baseball["batting"]["primary_key"] == ["player_id", "year", "stint"]
    assert {
        "columns": ["year", "team_id"],
        "ref_table": "teams",
        "ref_columns": ["year", "team_id"],
    } in baseball["batting"]["foreign_keys"]


def test_columns_that_need_quoting() -> None:
    db = open_database(TEXT2SQL_DATA, "penguins")
    r = db.execute(
        'SELECT count(*), max("Culmen Length (mm)") FROM penguins_raw WHERE "Sex" IS NULL'
    )
    assert r.ok and r.rows == [(11, 47.3)]
    nulls = db.execute("SELECT count(*) FROM penguins WHERE bill_length_mm IS NULL")
    assert nulls.rows == [(2,)]


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "notes.sqlite"
    bad.write_text("hello")
    with pytest.raises(ConfigError, match="not a SQLite database"):
        SQLiteDatabase(bad)


def test_workers_die_with_their_parent(chinook: Path) -> None:
    code = (
        "import sys, threading, time\n"
        "from prepflow.sandbox.sql import open_database\n"
        "from prepflow.sandbox.sql.sqlite import pool_for\n"
        f"db = open_database({str(chinook)!r}, workers=1)\n"
        "t = threading.Thread(target=db.execute, args=('SELECT 1',)); t.start(); t.join()\n"
        "print(pool_for(db.limits).pids()[0], flush=True)\n"
        f"db.execute({COUNT_FOREVER!r}, timeout_s=60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    time.sleep(0.2)  # the parent is now waiting on a 60 s statement
    proc.kill()
    proc.wait()
    for _ in range(50):
        if (
            not Path(f"/proc/{worker}").exists()
            or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]
        ):
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"worker {worker} outlived its parent")
