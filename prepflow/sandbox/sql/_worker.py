"""The SQLite query worker: a separate process that runs untrusted SQL against read-only files.

Run as ``python -I -S _worker.py MEMORY_MB`` by :mod:`prepflow.sandbox.sql.sqlite`; it imports
only the standard library (no site packages), so it starts in a few milliseconds. It limits its
own address space (RLIMIT_AS), the size of any file it could write (zero) and its open files,
asks the kernel to kill it when its parent dies, and then serves requests read from stdin and
answered on stdout, each a 4-byte big-endian length and a :mod:`marshal` payload (plain tuples of
str, int, float, bytes and None: nothing that runs code when read).

Every connection is opened with a read-only URI and ``query_only``, refuses ATTACH (an
authorizer and ``SQLITE_LIMIT_ATTACHED`` = 0), admits only reading actions (SELECT, column reads,
recursive CTEs, functions other than file and extension ones, a few schema-reading pragmas),
caps strings and blobs (``SQLITE_LIMIT_LENGTH``), keeps temporary data in memory under SQLite's
own heap limit, and checks a deadline every few thousand virtual-machine steps (progress
handler). The parent adds a wall-clock guard and kills the worker when even that fails.
"""

from __future__ import annotations

import marshal
import os
import resource
import signal
import sqlite3
import struct
import sys
import time
import urllib.parse
from collections import OrderedDict

#: Schema-reading pragmas a query may use (as ``PRAGMA table_info(t)`` or ``pragma_table_info``).
READ_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)
#: Functions that reach outside the database (files, extensions, tokenizers): always refused.
DENIED_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "zipfile"}
)
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_ACTIONS = (
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE_TABLE",
    "CREATE_INDEX",
    "CREATE_VIEW",
    "CREATE_TRIGGER",
    "CREATE_TEMP_TABLE",
    "CREATE_TEMP_INDEX",
    "CREATE_TEMP_VIEW",
    "CREATE_TEMP_TRIGGER",
    "CREATE_VTABLE",
    "DROP_TABLE",
    "DROP_INDEX",
    "DROP_VIEW",
    "DROP_TRIGGER",
    "DROP_TEMP_TABLE",
    "DROP_TEMP_INDEX",
    "DROP_TEMP_VIEW",
    "DROP_TEMP_TRIGGER",
    "DROP_VTABLE",
    "ALTER_TABLE",
    "REINDEX",
    "ANALYZE",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "TRANSACTION",
    "SAVEPOINT",
)
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{n}"): n for n in _ACTIONS if hasattr(sqlite3, f"SQLITE_{n}")
}
PROGRESS_STEPS = 2000
MAX_CONNECTIONS = 16

_deadline = float("inf")
_denied: list[str] = []  # what the authorizer refused during the current statement
_connections: OrderedDict[str, sqlite3.Connection] = OrderedDict()
_max_length = 1 << 26


def _authorize(
    action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None
) -> int:
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        if (arg2 or "").lower() in DENIED_FUNCTIONS:
            _denied.append(f"function {arg2}()")
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    what = _ACTION_NAMES.get(action, str(action))
    detail = " ".join(a for a in (arg1, arg2) if a)
    _denied.append(f"{what} {detail}".strip())
    return sqlite3.SQLITE_DENY


def _progress() -> int:
    return 1 if time.monotonic() > _deadline else 0


def _connect(path: str) -> sqlite3.Connection:
    conn = _connections.get(path)
    if conn is not None:
        _connections.move_to_end(path)
        return conn
    if not os.path.isfile(path):
        raise sqlite3.OperationalError(f"no such database file: {path}")
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _max_length)
    if hasattr(conn, "enable_load_extension"):
        conn.enable_load_extension(False)
    conn.set_authorizer(_authorize)
    conn.set_progress_handler(_progress, PROGRESS_STEPS)
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    _connections[path] = conn
    while len(_connections) > MAX_CONNECTIONS:
        _connections.popitem(last=False)[1].close()
    return conn


def _row_bytes(row: tuple) -> int:
    return 8 * len(row) + sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)


def _classify(e: BaseException) -> tuple[str, str]:
    """(status, message) of a failed statement, as QueryStatus values."""
    if isinstance(e, MemoryError):
        return "memory", "out of memory"
    message = str(e) or type(e).__name__
    low = message.lower()
    if low == "interrupted":
        return "timeout", "statement timeout"
    if any(k in low for k in ("not authorized", "authorization denied", "readonly database")):
        what = "; ".join(dict.fromkeys(_denied)) or message
        return "denied", f"denied: {what}"
    if "out of memory" in low:
        return "memory", message
    if "string or blob too big" in low:
        return "size-limit", f"{message} (a value longer than {_max_length} bytes)"
    return "error", message


def _query(path: str, sql: str, timeout_s: float, max_rows: int, max_bytes: int) -> tuple:
    global _deadline
    started = time.monotonic()
    _deadline = started + timeout_s
    _denied.clear()
    columns: tuple = ()
    rows: list = []
    status, error = "ok", None
    cursor = None
    try:
        conn = _connect(path)
        cursor = conn.execute(sql)
        columns = tuple(d[0] for d in cursor.description or ())
        size = 0
        while status == "ok" and (batch := cursor.fetchmany(256)):
            for row in batch:
                if len(rows) >= max_rows:
                    status, error = "row-limit", f"more than max_rows={max_rows} rows"
                    break
                size += _row_bytes(row)
                if size > max_bytes:
                    status, error = "size-limit", f"result larger than max_bytes={max_bytes}"
                    break
                rows.append(row)
    except (sqlite3.Error, MemoryError, OverflowError, ValueError) as e:
        status, error = _classify(e)
        rows = []
    finally:
        _deadline = float("inf")
        if cursor is not None:
            cursor.close()
        conn = _connections.get(path)
        if conn is not None and conn.in_transaction:
            conn.rollback()
    return (status, columns, rows, error, time.monotonic() - started)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _schema(path: str, samples: int, timeout_s: float) -> tuple:
    """(tables, error): each table (name, kind, columns, foreign keys, row count), each column
    (name, type, not null, pk position, sample values); foreign keys (columns, table, columns)."""
    global _deadline
    _deadline = time.monotonic() + timeout_s
    _denied.clear()
    try:
        conn = _connect(path)
        tables = []
        for name, kind in conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
        ).fetchall():
            q = _quote(name)
            columns = []
            for _, col, ctype, notnull, _, pk in conn.execute(f"PRAGMA table_info({q})").fetchall():
                values = (
                    [
                        v[:64] if isinstance(v, str) else v
                        for (v,) in conn.execute(
                            f"SELECT DISTINCT {_quote(col)} FROM {q} WHERE {_quote(col)} IS NOT NULL "
                            f"AND typeof({_quote(col)}) != 'blob' LIMIT ?",
                            (samples,),
                        ).fetchall()
                    ]
                    if samples
                    else []
                )
                if not ctype:  # an untyped column: the storage class most of its first rows use
                    found = conn.execute(
                        f"SELECT upper(typeof(v)) FROM (SELECT {_quote(col)} AS v FROM {q} LIMIT 100) "
                        "WHERE v IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
                    ).fetchone()
                    ctype = found[0] if found else ""
                columns.append((col, ctype, bool(notnull), int(pk), values))
            fks: dict[int, list] = {}
            for fk_id, _, ref, src, dst, *_ in conn.execute(
                f"PRAGMA foreign_key_list({q})"
            ).fetchall():
                entry = fks.setdefault(fk_id, [[], ref, []])
                entry[0].append(src)
                entry[2].append(dst)
            (count,) = conn.execute(f"SELECT count(*) FROM {q}").fetchone()
            tables.append((name, kind, columns, [tuple(f) for f in fks.values()], count))
        return (tables, None)
    except (sqlite3.Error, MemoryError) as e:
        return (None, _classify(e)[1])
    finally:
        _deadline = float("inf")


def _read_exact(n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(0, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _limit_self(memory_mb: int) -> None:
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills
    try:  # die with the parent (Linux), even in the middle of a statement
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            sys.exit(0)
    except (OSError, AttributeError):
        pass


def main() -> None:
    global _max_length
    memory_mb, _max_length = int(sys.argv[1]), int(sys.argv[2])
    # SQLite's own heap stays under the process limit, so it fails a statement cleanly
    # ("out of memory") before Python itself runs out
    sqlite3.connect(":memory:").execute(f"PRAGMA hard_heap_limit = {(memory_mb * 3 // 4) << 20}")
    _limit_self(memory_mb)
    while (head := _read_exact(4)) is not None:
        body = _read_exact(struct.unpack(">I", head)[0])
        if body is None:
            break
        request = marshal.loads(body)
        try:
            if request[0] == "query":
                reply = _query(*request[1:])
            elif request[0] == "schema":
                reply = _schema(*request[1:])
            else:
                reply = ("pong",)
            out = marshal.dumps(reply)
        except MemoryError:
            out = marshal.dumps(("memory", (), [], "out of memory", 0.0))
        os.write(1, struct.pack(">I", len(out)))
        view = memoryview(out)
        while view:
            view = view[os.write(1, view) :]


if __name__ == "__main__":
    main()
