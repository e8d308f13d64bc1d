"""Running steps over one shard: failure isolation, stats, writing the shard files, and the
row-by-row streaming of consecutive async steps.

Used both in worker processes and in the main process, so it holds no executor state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.errors import PrepflowError
from prepflow.core.operator import (
    ERROR_TYPE,
    REASON,
    Kind,
    Operator,
    Result,
    SliceRunner,
    StepStats,
    failure_rows,
)
from prepflow.core.reasons import reason_key
from prepflow.data.runstore import ShardWriter, read_shard
from prepflow.engine.profiling import profiled

MAX_REASON_KEYS = 50


#: A run of rows ``[start, start + table.num_rows)`` that failed or gave this result.
Outcome = Result | Exception


def _isolate(batch: pa.Table, start: int) -> Generator[tuple[pa.Table, int], Outcome, Result]:
    """Failure isolation, written once for sync and async operators: asks its driver to run
    ``batch`` (a table and its first row's offset), and when that raises, bisects down to the
    rows that fail, each of which becomes a failure record."""
    outcome = yield batch, start
    if isinstance(outcome, Result):
        return outcome
    if batch.num_rows <= 1:
        return _failed(batch, outcome)
    mid = batch.num_rows // 2
    left = yield from _isolate(batch.slice(0, mid), start)
    right = yield from _isolate(batch.slice(mid), start + mid)
    return merge([left, right])


def apply(op: Operator, batch: pa.Table) -> Result:
    """Run ``op`` on ``batch``; when it raises, bisect to isolate the failing rows.

    Errors of prepflow's own types (bad configuration, contract breaches) stop the run: they are
    not about a row. Any other exception becomes failure records for exactly the rows that raise.
    """
    steps = _isolate(batch, 0)
    request = next(steps)
    while True:
        table, _ = request
        try:
            outcome: Outcome = op.run_batch(table)
        except PrepflowError:
            raise
        except Exception as e:
            outcome = e
        try:
            request = steps.send(outcome)
        except StopIteration as done:
            return done.value


async def aapply(
    op: Operator,
    batch: pa.Table,
    run: SliceRunner | None = None,
    start: int = 0,
) -> Result:
    """:func:`apply` for async operators; ``run(start, stop)``, when given, runs rows of a larger
    batch that ``batch`` is a slice of, beginning at row ``start`` (see
    :meth:`Operator.slice_runner`)."""
    steps = _isolate(batch, start)
    request = next(steps)
    while True:
        table, at = request
        try:
            outcome: Outcome = await (
                op.arun_batch(table) if run is None else run(at, at + table.num_rows)
            )
        except PrepflowError:
            raise
        except Exception as e:
            outcome = e
        try:
            request = steps.send(outcome)
        except StopIteration as done:
            return done.value


def _failed(batch: pa.Table, error: Exception) -> Result:
    return Result(
        kept=batch.slice(0, 0),
        failed=failure_rows(batch, type(error).__name__, str(error) or repr(error)),
    )


def merge(results: list[Result]) -> Result:
    kept = _concat([r.kept for r in results])
    assert kept is not None
    kinds = dict.fromkeys(kind for r in results for kind in r.extra)
    return Result(
        kept=kept,
        dropped=_concat([r.dropped for r in results]),
        failed=_concat([r.failed for r in results]),
        extra={kind: _concat([r.extra.get(kind) for r in results]) for kind in kinds},
    )


def _concat(tables: list[pa.Table | None]) -> pa.Table | None:
    """The tables with rows, in order (schemas promoted); else the first table, else None."""
    present = [t for t in tables if t is not None and t.num_rows]
    if not present:
        return next((t for t in tables if t is not None), None)
    return pa.concat_tables(present, promote_options="permissive")


def stats_of(op: Operator, rows_in: int, result: Result, seconds: float) -> StepStats:
    st = StepStats(
        rows_in=rows_in,
        rows_out=result.kept.num_rows,
        dropped=result.n_dropped,
        failed=result.n_failed,
        seconds=seconds,
    )
    if op.kind is not Kind.GENERATE and st.rows_out != st.kept:
        raise PrepflowError(
            f"{op.name}: {st.rows_in} rows in, {st.rows_out} kept + {st.dropped} "
            f"dropped + {st.failed} failed: rows were lost or invented"
        )
    if result.dropped is not None and result.dropped.num_rows:
        st.drop_reasons = _counts(result.dropped[REASON], normalise=True)
    if result.failed is not None and result.failed.num_rows:
        st.errors = _counts(result.failed[ERROR_TYPE], normalise=False)
    return st


def _counts(column: pa.ChunkedArray, *, normalise: bool) -> dict[str, int]:
    """Value counts of reasons, grouped by rule and threshold (:mod:`prepflow.core.reasons`:
    "min_words: word_count=3 < 5" and "...=4 < 5" count under "min_words: word_count < 5")."""
    counts: dict[str, int] = {}
    for item in pc.value_counts(column).to_pylist():
        key = str(item["values"])
        if normalise:
            key = reason_key(key)
        counts[key] = counts.get(key, 0) + item["counts"]
    if len(counts) > MAX_REASON_KEYS:
        top = sorted(counts.items(), key=lambda kv: -kv[1])
        counts = dict(top[: MAX_REASON_KEYS - 1])
        counts["(other reasons)"] = sum(v for _, v in top[MAX_REASON_KEYS - 1 :])
    return counts


@dataclass
class ShardJob:
    """One shard through consecutive steps; picklable so a worker process can run it."""

    writer: ShardWriter
    shard: int
    source: Path  # the shard file the first step reads
    steps: list[str]  # step dir names, in order
    profile: bool = False  # run each step under cProfile (``--profile``)


def run_sync(job: ShardJob, ops: list[Operator]) -> list[StepStats]:
    """Run a shard through sync steps, writing each step's files; returns per-step stats."""
    batch = read_shard(job.source)
    out = []
    for step_dir, op in zip(job.steps, ops, strict=True):
        with profiled(job.writer if job.profile else None, step_dir, job.shard, "run"):
            t0 = time.perf_counter()
            result = apply(op, batch)
            seconds = time.perf_counter() - t0
        out.append(stats_of(op, batch.num_rows, result, seconds))
        job.writer.write(step_dir, job.shard, result)
        batch = result.kept
    return out


#: Rows per piece when consecutive async steps stream: each row moves on to the next step as
#: soon as its own answers are in, so a slow answer (a 429's Retry-After, a long generation)
#: holds back only its own row, not the whole shard. (Pieces of 4 rows: 15.3 s against 14.2 s
#: for one row at a time on benchmarks/reasoning_math.py's 4,209 requests; the extra Arrow work
#: per piece is about 0.1 ms.)
STREAM_ROWS = 1

Key = tuple[int, ...]  # a piece's place in its step's input: parent piece's key + its index


async def run_async_chain(
    job: ShardJob,
    ops: list[Operator],
    read: Callable[[Path], Awaitable[pa.Table]],
    on_step: Callable[[int, StepStats], None],
    on_rows: Callable[[int, int], None] = lambda position, rows: None,
) -> None:
    """Run a shard through consecutive async steps, streaming rows from one to the next.

    A ``row_local`` step takes its input in pieces of :data:`STREAM_ROWS` rows as they arrive;
    another step waits for all of its input, then runs it in such pieces when it has a
    :meth:`~Operator.slice_runner` (rows that took context from each other still move on one by
    one), else at once. A step's files are written, and
    ``on_rows(position in ops, rows)`` is called as each piece is done (live progress), and
    ``on_step(position in ops, stats)`` when a step's last piece is done, in step order; its
    rows are in input order, as if the whole shard had gone through at once.
    """
    batch = await read(job.source)
    loop = asyncio.get_running_loop()
    n = len(ops)
    results: list[dict[Key, Result]] = [{} for _ in ops]
    waiting: list[dict[Key, pa.Table]] = [{} for _ in ops]  # input held for a whole-batch step
    started = [False] * n  # a whole-batch step's one run has begun
    empty: list[pa.Table | None] = [batch.slice(0, 0), *([None] * (n - 1))]
    rows_in, pending, closed = [0] * n, [0] * n, [True, *([False] * (n - 1))]
    first_start, last_end = [float("inf")] * n, [0.0] * n
    tasks: set[asyncio.Future[None]] = set()
    finished: asyncio.Future[None] = loop.create_future()

    def spawn(
        s: int, key: Key, table: pa.Table, run: SliceRunner | None = None, at: int = 0
    ) -> None:
        pending[s] += 1
        task = asyncio.ensure_future(run_piece(s, key, table, run, at))
        tasks.add(task)
        task.add_done_callback(settle)

    def settle(task: asyncio.Future[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not finished.done():
            finished.set_exception(task.exception())  # type: ignore[arg-type]

    def feed(s: int, key: Key, table: pa.Table) -> None:
        rows_in[s] += table.num_rows
        if not ops[s].row_local:
            waiting[s][key] = table
            return
        spawn_pieces(s, key, table)

    def spawn_pieces(s: int, key: Key, table: pa.Table, run: SliceRunner | None = None) -> None:
        for j, at in enumerate(range(0, table.num_rows, STREAM_ROWS)):
            spawn(s, (*key, j), table.slice(at, STREAM_ROWS), run, at)

    async def run_piece(
        s: int, key: Key, table: pa.Table, run: SliceRunner | None, at: int
    ) -> None:
        first_start[s] = min(first_start[s], time.perf_counter())
        result = await aapply(ops[s], table, run, at)
        last_end[s] = max(last_end[s], time.perf_counter())
        on_rows(s, table.num_rows)
        results[s][key] = result
        if s + 1 < n and result.kept.num_rows:
            feed(s + 1, key, result.kept)
        pending[s] -= 1
        close(s)

    def close(s: int) -> None:
        """Start what step ``s`` still waits for, or finish it when nothing is left."""
        if not closed[s] or pending[s]:
            return
        if not ops[s].row_local and not started[s]:
            started[s] = True
            held = _concat([waiting[s].pop(k) for k in sorted(waiting[s])])
            run = ops[s].slice_runner(held) if held is not None else None
            if run is None:
                spawn(s, (), empty[s] if held is None else held)
                return
            spawn_pieces(s, (), held, run)
            return
        if not results[s]:  # no row reached this step: run it on none, for its output schema
            spawn(s, (), empty[s])
            return
        result = merge([results[s][k] for k in sorted(results[s])])
        results[s].clear()
        seconds = max(0.0, last_end[s] - first_start[s])
        stats = stats_of(ops[s], rows_in[s], result, seconds)
        job.writer.write(job.steps[s], job.shard, result)
        on_step(s, stats)
        if s + 1 < n:
            empty[s + 1], closed[s + 1] = result.kept.slice(0, 0), True
            close(s + 1)
        elif not finished.done():
            finished.set_result(None)

    feed(0, (), batch)
    close(0)
    try:
        await finished
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
