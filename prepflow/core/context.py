"""The run context: the one door through which an operator reaches the world.

An operator gets a :class:`RunContext` in ``setup(ctx)`` and keeps what it needs from it: the
serving layer (chat, embeddings), the sandbox (run untrusted programs), databases (read-only SQL),
side inputs (a reference dataset read with the same readers as the main input), a scratch
directory, a logger and the run's seed. Everything here is a protocol or plain data: core knows
nothing of the engine, serving, sandbox or data layers that implement them, and tests pass a
fake (``prepflow.testing``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

# ---- serving -------------------------------------------------------------------------------


@runtime_checkable
class ChatResponse(Protocol):
    """One model answer as operators see it."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    attempts: int
    #: the validated value when a schema was given
    parsed: Any


class Serving(Protocol):
    """An OpenAI-compatible endpoint with caching, retries and accounting behind it."""

    #: default generation parameters, merged under each request's
    generation: Mapping[str, Any]

    async def chat(
        self, messages: list[dict[str, Any]], *, schema: Any = None, **generation: Any
    ) -> ChatResponse: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def forget(self, response: ChatResponse) -> None:
        """Drop an answer from the cache (it could not be used: a retry must ask again)."""


# ---- sandbox -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed execution."""

    wall_s: float = 10.0  # wall-clock time; the whole process group is killed after it
    cpu_s: float = 10.0  # CPU time (RLIMIT_CPU)
    memory_mb: int = 512  # address space (RLIMIT_AS)
    processes: int = 64  # processes and threads (a pid namespace cap, RLIMIT_NPROC)
    file_size_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    open_files: int = 64  # RLIMIT_NOFILE
    output_bytes: int = 1 << 20  # kept of stdout and of stderr each; the rest is counted


class ExecStatus(StrEnum):
    OK = "ok"  # exited 0
    ERROR = "error"  # exited non-zero or died of an exception
    TIMEOUT = "timeout"  # wall-clock or CPU limit
    MEMORY = "memory"  # memory limit
    KILLED = "killed"  # killed by a signal it did not cause through a limit
    OUTPUT_LIMIT = "output-limit"  # wrote more than the output cap allows (killed)


@dataclass(frozen=True)
class ExecResult:
    """What one sandboxed execution did."""

    status: ExecStatus
    exit_code: int | None  # None when killed by a signal
    stdout: str  # at most Limits.output_bytes, decoded with replacement
    stderr: str
    stdout_bytes: int  # sizes before truncation
    stderr_bytes: int
    duration_s: float
    peak_memory_mb: float | None = None
    #: which protections were active (e.g. "net", "pid", "mount", "uid", "rlimits")
    protections: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is ExecStatus.OK


class Sandbox(Protocol):
    """Runs untrusted programs in isolation (see ``prepflow.sandbox``)."""

    def run_python(
        self,
        code: str,
        *,
        stdin: str = "",
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        """Run ``code`` as a Python program; ``files`` are written into its scratch directory
        (its working directory) first; ``env`` is its whole environment beside the sandbox's."""
        ...

    def run_command(
        self,
        argv: Sequence[str],
        *,
        stdin: str = "",
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> ExecResult: ...


# ---- databases -----------------------------------------------------------------------------


class QueryStatus(StrEnum):
    OK = "ok"
    ERROR = "error"  # the database rejected the statement (syntax, unknown column...)
    DENIED = "denied"  # a write, ATTACH, PRAGMA write, extension load: refused
    TIMEOUT = "timeout"
    ROW_LIMIT = "row-limit"  # more rows than max_rows (the first max_rows are kept)
    SIZE_LIMIT = "size-limit"  # result larger than the byte cap
    MEMORY = "memory"  # the query's worker ran out of its memory limit


@dataclass(frozen=True)
class QueryResult:
    status: QueryStatus
    columns: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is QueryStatus.OK


class Database(Protocol):
    """A database opened read-only: every statement runs under a timeout and row/size caps."""

    name: str
    dialect: str  # sqlglot dialect name: "sqlite", "postgres", ...

    def execute(
        self, sql: str, *, timeout_s: float | None = None, max_rows: int | None = None
    ) -> QueryResult: ...

    def schema(self) -> Any:
        """Tables, columns with types, primary and foreign keys, sample values."""
        ...


# ---- the context ---------------------------------------------------------------------------


class RunContext(Protocol):
    """What the engine hands to ``Operator.setup``. Attributes an operator does not declare a
    requirement for may raise :class:`~prepflow.core.errors.ConfigError` saying what is missing."""

    @property
    def serving(self) -> Serving: ...

    @property
    def sandbox(self) -> Sandbox: ...

    def database(self, source: str, db_id: str | None = None) -> Database:
        """A database by path or URL (a SQLite file, a Spider/BIRD directory with ``db_id``,
        ``postgresql://...``), opened read-only."""
        ...

    def side_input(self, source: str, *, batch_rows: int = 65536) -> Iterator[pa.Table]:
        """A reference dataset (file, directory, glob or URL), read as the main input is."""
        ...

    @property
    def scratch_dir(self) -> Path:
        """A directory private to this run and operator, for temporary files."""
        ...

    @property
    def logger(self) -> logging.Logger: ...

    @property
    def seed(self) -> int: ...
