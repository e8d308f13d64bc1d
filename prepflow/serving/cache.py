"""Content-addressed store of LLM answers in one SQLite file.

The key is a hash of everything that decides an answer (model, messages, generation parameters,
schema); the value is what the server said (text, finish reason, usage) or an embedding. Every
answer is committed as it arrives (WAL journal), so a killed run keeps every finished request and
a resumed run pays only for the rest. Several processes may share one file (a shared cache dir).
Nothing about the endpoint or its credentials is stored.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

#: How long opening waits for other processes that are setting up the same file.
_OPEN_TIMEOUT_S = 60.0


def cache_key(request: Mapping[str, Any]) -> bytes:
    """Stable 16-byte hash of a request description (key order does not matter)."""
    return hashlib.blake2b(
        orjson.dumps(request, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).digest()


class ResponseCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=60
        )
        self._set_up()

    def _set_up(self) -> None:
        """Switch to WAL and create the table, waiting out other processes doing the same.

        SQLite answers "database is locked" at once, without its busy timeout, when two
        connections change the journal mode of a new file together, so this retries itself.
        """
        deadline = time.monotonic() + _OPEN_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS responses "
                    "(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
                )
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get(self, key: bytes) -> Any | None:
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def put(self, key: bytes, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
            (key, orjson.dumps(value)),
        )

    def delete(self, key: bytes) -> None:
        self._db.execute("DELETE FROM responses WHERE key = ?", (key,))

    def absorb(self, other: str | Path) -> int:
        """Copy in the answers another cache holds that this one lacks (a ``--limit`` trial's,
        so the full run pays nothing twice); returns how many were added."""
        before = len(self)
        self._db.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO responses SELECT key, value FROM other.responses"
            )
        finally:
            self._db.execute("DETACH DATABASE other")
        return len(self) - before

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"
