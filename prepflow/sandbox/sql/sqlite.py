"""SQLite databases queried in worker processes that cannot change them.

Each statement goes to a worker process (:mod:`._worker`) that holds the file open read-only
under an authorizer, a statement deadline, row and byte caps and its own memory limit. The parent
waits at most the statement's time limit plus a grace period; a worker that overruns it, or dies
(out of memory, a crash), is killed and replaced, and the statement is recorded as a timeout or a
memory failure: a pathological query never hangs or kills the run.

Workers are shared by every database opened in a process (a worker keeps a few connections, one
per file), started when first needed and stopped at exit; a forked child starts its own.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import marshal
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prepflow.core.context import QueryResult, QueryStatus
from prepflow.core.errors import ConfigError
from prepflow.sandbox.sql import schema as schemas

WORKER = Path(__file__).with_name("_worker.py")
#: Seconds a worker may run past a statement's time limit before the parent kills it.
GRACE_S = 2.0


@dataclass(frozen=True)
class SQLLimits:
    """Limits every statement runs under (per call, ``timeout_s`` and ``max_rows`` may differ)."""

    timeout_s: float = 10.0  # statement time limit
    max_rows: int = 10_000  # rows kept; more is a ROW_LIMIT result
    max_bytes: int = 32 << 20  # result size (text and blobs by length, numbers 8 bytes)
    max_value_bytes: int = 16 << 20  # longest string or blob a statement may build
    memory_mb: int = 512  # each worker's address space (RLIMIT_AS)
    workers: int = 2  # worker processes per process (statements run at most this many at once)
    schema_samples: int = 3  # sample values per column in schema()

    def __post_init__(self) -> None:
        for name in (
            "timeout_s",
            "max_rows",
            "max_bytes",
            "max_value_bytes",
            "memory_mb",
            "workers",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"database limit {name} must be positive, got {getattr(self, name)}"
                )
        if self.memory_mb < 64:
            raise ConfigError(f"database limit memory_mb must be at least 64, got {self.memory_mb}")


class WorkerDied(Exception):
    def __init__(self, status: QueryStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={},
        close_fds=True,
        start_new_session=True,
    )


#: Workers are started from this one long-lived thread: a worker asks the kernel to kill it when
#: the thread that started it ends (PR_SET_PDEATHSIG follows threads), which must mean the process.
_spawner = cf.ThreadPoolExecutor(1, thread_name_prefix="sql-worker-spawner")


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, memory_mb: int, max_value_bytes: int) -> None:
        argv = [sys.executable, "-I", "-S", str(WORKER), str(memory_mb), str(max_value_bytes)]
        self.proc = _spawner.submit(_spawn, argv).result()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out, self.inp = self.proc.stdin.fileno(), self.proc.stdout.fileno()

    def call(self, request: tuple, wait_s: float) -> tuple:
        body = marshal.dumps(request)
        deadline = time.monotonic() + wait_s
        try:
            os.write(self.out, struct.pack(">I", len(body)))
            view = memoryview(body)
            while view:
                view = view[os.write(self.out, view) :]
            size = struct.unpack(">I", self._read(4, deadline))[0]
            return marshal.loads(self._read(size, deadline))
        except BrokenPipeError:
            raise self._died() from None

    def _read(self, n: int, deadline: float) -> bytes:
        chunks, left = [], n
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.inp], [], [], remaining)[0]:
                self.kill()
                raise WorkerDied(QueryStatus.TIMEOUT, "statement timeout (worker killed)")
            chunk = os.read(self.inp, left)
            if not chunk:
                raise self._died()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _died(self) -> WorkerDied:
        code = self.proc.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return WorkerDied(QueryStatus.MEMORY, f"query worker died ({how}) under its memory limit")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        try:
            self.proc.wait(1)
        except subprocess.TimeoutExpired:
            self.kill()


class WorkerPool:
    """Up to ``size`` workers with the same limits; a statement takes an idle one or waits."""

    def __init__(self, size: int, memory_mb: int, max_value_bytes: int) -> None:
        self.size, self.memory_mb, self.max_value_bytes = size, memory_mb, max_value_bytes
        self._idle: list[_Worker] = []
        self._started = 0
        self._cond = threading.Condition()
        self.replaced = 0  # workers killed or dead and replaced (for tests and reports)

    def call(self, request: tuple, wait_s: float) -> tuple:
        worker = self._checkout()
        ok = False
        try:
            reply = worker.call(request, wait_s)
            ok = True
            return reply
        finally:
            self._checkin(worker if ok else None)

    def _checkout(self) -> _Worker:
        with self._cond:
            while True:
                while not self._idle and self._started >= self.size:
                    self._cond.wait()
                if not self._idle:
                    break
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                self._started -= 1  # died while idle (killed from outside): replace it
                self.replaced += 1
            self._started += 1
        try:
            return _Worker(self.memory_mb, self.max_value_bytes)
        except BaseException:
            with self._cond:
                self._started -= 1
                self._cond.notify()
            raise

    def _checkin(self, worker: _Worker | None) -> None:
        with self._cond:
            if worker is None:  # killed or dead: a fresh one starts on the next checkout
                self._started -= 1
                self.replaced += 1
            else:
                self._idle.append(worker)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for w in idle:
            w.close()

    def pids(self) -> list[int]:
        with self._cond:
            return [w.proc.pid for w in self._idle]


_pools: dict[tuple[int, int, int], WorkerPool] = {}
_pools_lock = threading.Lock()


def pool_for(limits: SQLLimits) -> WorkerPool:
    key = (limits.workers, limits.memory_mb, limits.max_value_bytes)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = WorkerPool(*key)
        return pool


def _forget_pools_in_child() -> None:
    """A forked child must not share its parent's worker pipes: it starts its own workers."""
    global _pools_lock, _spawner
    _pools.clear()
    _pools_lock = threading.Lock()
    _spawner = cf.ThreadPoolExecutor(1, thread_name_prefix="sql-worker-spawner")


def _close_pools() -> None:
    for pool in list(_pools.values()):
        pool.close()


os.register_at_fork(after_in_child=_forget_pools_in_child)
atexit.register(_close_pools)


class SQLiteDatabase:
    """A SQLite file, read-only, each statement in a worker process under :class:`SQLLimits`."""

    dialect = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        limits: SQLLimits | None = None,
        spider_entry: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise ConfigError(f"no SQLite database at {path}")
        with self.path.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise ConfigError(f"{path} is not a SQLite database file")
        self.name = name or self.path.stem
        self.limits = limits or SQLLimits()
        self._spider = spider_entry
        self._schema: dict[str, Any] | None = None
        self._pool = pool_for(self.limits)

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r}, name={self.name!r})"

    def execute(
        self, sql: str, *, timeout_s: float | None = None, max_rows: int | None = None
    ) -> QueryResult:
        timeout = self.limits.timeout_s if timeout_s is None else timeout_s
        rows_cap = self.limits.max_rows if max_rows is None else max_rows
        if not isinstance(sql, str) or not sql.strip():
            return QueryResult(QueryStatus.ERROR, error="empty statement")
        request = (
            "query",
            str(self.path),
            sql,
            float(timeout),
            int(rows_cap),
            self.limits.max_bytes,
        )
        started = time.monotonic()
        try:
            status, columns, rows, error, duration = self._pool.call(request, timeout + GRACE_S)
        except WorkerDied as e:
            return QueryResult(e.status, error=str(e), duration_s=time.monotonic() - started)
        return QueryResult(QueryStatus(status), tuple(columns), rows, error, duration)

    def schema(self) -> dict[str, Any]:
        """Tables, columns with types, keys, foreign keys, row counts and sample values (cached;
        see :mod:`prepflow.sandbox.sql.schema` for the shape)."""
        if self._schema is None:
            timeout = max(self.limits.timeout_s, 30.0)
            request = ("schema", str(self.path), self.limits.schema_samples, timeout)
            try:
                tables, error = self._pool.call(request, timeout + GRACE_S)
            except WorkerDied as e:
                raise ConfigError(f"{self.path}: reading the schema failed: {e}") from None
            if tables is None:
                raise ConfigError(f"{self.path}: reading the schema failed: {error}")
            built = [
                schemas.table(
                    name,
                    kind,
                    [schemas.column(*c) for c in columns],
                    [
                        {"columns": list(a), "ref_table": ref, "ref_columns": list(b)}
                        for a, ref, b in fks
                    ],
                    rows,
                )
                for name, kind, columns, fks, rows in tables
            ]
            schemas.resolve_foreign_keys(built)
            schema = {"name": self.name, "dialect": self.dialect, "tables": built}
            if self._spider is not None:
                schemas.merge_spider(schema, self._spider)
            self._schema = schema
        return self._schema

    def close(self) -> None:
        """Nothing to release per database: the shared workers stop at exit."""
