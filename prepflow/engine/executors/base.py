"""The executor interface, and the bookkeeping every executor shares.

An executor runs a compiled plan over the input's shards: ``prepare()`` takes what it needs
(pools, a cluster connection), ``await execute()`` runs every (step, shard) that is not already done, committing
each through the run store, and ``finish()`` releases what ``plan`` took and says what was
produced. The runner picks an implementation by name (:mod:`prepflow.engine.executors`) and knows
nothing else about it. This base class owns what does not depend on how work is scheduled:
ingesting the input into shards (with quarantine), resume decisions, commits, and the global
protocol (summarize every shard, merge, finalize, apply).
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures as cf
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from prepflow.core.errors import InputError, PrepflowError
from prepflow.core.operator import ID, Operator, StepStats
from prepflow.core.tables import int64_range
from prepflow.data import journal
from prepflow.data.digest import table_digest
from prepflow.data.readers import BadRecord, Source
from prepflow.data.runstore import INPUT_STEP, RunStore
from prepflow.engine.compiler import CompiledStep, Plan, fingerprint
from prepflow.engine.context import EngineContext
from prepflow.engine.profiling import profiled
from prepflow.engine.steprun import apply, stats_of


@dataclass
class ExecOptions:
    """How to run, for every executor (an executor may ignore what it cannot use)."""

    shard_rows: int = 50_000
    workers: int = 0  # parallel shards; 0: one per core
    on_bad_input: str = "stop"  # or "quarantine"
    shards_in_flight: int = 0  # 0: the executor's default
    address: str | None = None  # a cluster to run on (executors that use one); None: start one
    profile: bool = False  # run every computed unit under cProfile (prepflow.engine.profiling)


@dataclass(frozen=True)
class Execution:
    """What a finished execution produced."""

    n_shards: int
    quarantined: int
    final_shards: list[Path]
    #: LLM usage spent outside the runner's serving (by remote workers), added to the report
    usage: dict[str, Any] = field(default_factory=dict)


ContextFactory = Callable[[CompiledStep], EngineContext]
Stage = tuple[str, list[CompiledStep]]  # ("sync" | "async" | "global", steps)


def stages_of(steps: list[CompiledStep]) -> list[Stage]:
    """Consecutive sync steps form one stage (one job per shard), and so do consecutive async
    steps (rows stream from one to the next); a global step is a stage of its own."""
    stages: list[Stage] = []
    for s in steps:
        if s.mode != "global" and stages and stages[-1][0] == s.mode:
            stages[-1][1].append(s)
        else:
            stages.append((s.mode, [s]))
    return stages


class Executor(abc.ABC):
    """Base of the executors; subclasses implement :meth:`execute` (and may extend the rest)."""

    name: ClassVar[str]

    def __init__(
        self,
        plan: Plan,
        source: Source,
        store: RunStore,
        options: ExecOptions,
        ingest_fingerprint: str,
        context: ContextFactory,
    ) -> None:
        self.plan, self.source, self.store, self.opts = plan, source, store, options
        self.ingest_fp = ingest_fingerprint
        self.context = context
        self.records = store.records()
        self.dirty: dict[int, bool] = {}  # shard -> recomputed at some earlier step this session
        self.n_shards = 0
        self.quarantined = 0
        self._ops: dict[int, Operator] = {}

    # ---- the interface -----------------------------------------------------------------------

    @abc.abstractmethod
    def prepare(self) -> None:
        """Take what the execution needs: pools, a cluster connection."""

    @abc.abstractmethod
    async def execute(self) -> None:
        """Run every (step, shard) that is not done, committing each through the store."""

    def finish(self) -> Execution:
        """Release what :meth:`prepare` took (subclasses extend this), tear the operators down,
        and say what was made."""
        for op in self._ops.values():
            op.teardown()
        self._ops.clear()
        last = self.plan.steps[-1].dirname
        return Execution(
            self.n_shards,
            self.quarantined,
            [self.store.shard_path("steps", last, k) for k in range(self.n_shards)],
        )

    async def stream(
        self,
        in_flight: int,
        run_stages: Callable[[int, list[Stage]], Awaitable[None]],
        run_global: Callable[[CompiledStep], Awaitable[None]],
        ingest_pool: cf.Executor | None = None,
    ) -> None:
        """Run every shard through the plan's stages, at most ``in_flight`` shards at once, the
        first shards while ingest (a thread of ``ingest_pool``) is still cutting the input. A
        global step is a barrier: every shard reaches it, ``run_global`` runs, then the stages
        after it run on every shard."""
        phases: list[list[Stage]] = [[]]
        globals_: list[CompiledStep] = []
        for stage in stages_of(self.plan.steps):
            if stage[0] == "global":
                globals_.append(stage[1][0])
                phases.append([])
            else:
                phases[-1].append(stage)
        for p, phase in enumerate(phases):
            if p:
                await run_global(globals_[p - 1])
            sem = asyncio.Semaphore(in_flight)
            tasks: list[asyncio.Task[None]] = []
            shards = self._ingested(ingest_pool) if p == 0 else _count(self.n_shards)
            async for shard in shards:
                await sem.acquire()
                tasks.append(asyncio.create_task(_released(run_stages(shard, phase), sem)))
            await _gather_or_cancel(tasks)

    async def _ingested(self, pool: cf.Executor | None) -> AsyncIterator[int]:
        """Each shard as ingest commits it (ingest runs in a thread of ``pool``). On a fresh
        run, :meth:`set_up_ahead` runs meanwhile."""
        loop = asyncio.get_running_loop()
        fresh = not self.records  # read before ingest commits its first shard
        queue: asyncio.Queue[int | None] = asyncio.Queue()

        def cut() -> None:
            try:
                for shard in self.ingest():
                    asyncio.run_coroutine_threadsafe(queue.put(shard), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        done = loop.run_in_executor(pool, cut)
        if fresh:
            self.set_up_ahead()
        while (shard := await queue.get()) is not None:
            yield shard
        await done

    # ---- resume and commits ------------------------------------------------------------------

    def done(self, step_index: int, fp: str, step_dir: str, shard: int) -> bool:
        """Whether this (step, shard) is committed with this fingerprint and nothing upstream
        of it was recomputed this session."""
        rec = self.records.get((step_index, shard))
        return (
            rec is not None
            and rec.fingerprint == fp
            and not self.dirty.get(shard, False)
            and self.store.shard_path("steps", step_dir, shard).exists()
        )

    def commit(self, step_index: int, fp: str, shard: int, stats: StepStats) -> None:
        self.records[(step_index, shard)] = self.store.commit(step_index, shard, fp, stats)
        self.dirty[shard] = True

    def resumed(self, step_index: int, shard: int) -> None:
        """Tell listeners a (step, shard) was found done (progress counts it)."""
        self.store.resumed(step_index, shard, self.records[(step_index, shard)].stats)

    def input_dir(self, step_index: int) -> str:
        return INPUT_STEP if step_index == 1 else self.plan.steps[step_index - 2].dirname

    def op(self, step: CompiledStep) -> Operator:
        """The step's operator, set up once in this process with its context."""
        op = self._ops.get(step.index)
        if op is None:
            op = step.op
            op.setup(self.context(step))
            self._ops[step.index] = op
        return op

    def set_up_ahead(self) -> None:  # noqa: B027 (a hook: executors that can, override it)
        """On a fresh run, set up the operators that run in this process while ingest reads the
        input (a resumed run sets up only the steps with work left, as they come). A model's
        load or a library's import then overlaps the read instead of holding up the first
        shard. Default: none ahead."""

    def todo(self, steps: list[CompiledStep], shard: int) -> list[CompiledStep]:
        """The steps of a stage still to run for ``shard``: from the first that is not done on
        (once one step recomputes, every later step of the shard does too). Reports the
        resumed ones."""
        pending = [s for s in steps if not self.done(s.index, s.fingerprint, s.dirname, shard)]
        first = steps.index(pending[0]) if pending else len(steps)
        for s in steps[:first]:
            self.resumed(s.index, shard)
        return steps[first:]

    # ---- ingest ------------------------------------------------------------------------------

    def ingest(self) -> Iterator[int]:
        """Cut the input into shard files (skipping those already done), quarantining
        malformed records when asked; yields each shard index in order. Sets ``n_shards``.

        A shard is written and committed once the next one has been read, so the malformed
        records that follow its last row are known: they are its quarantine, written whole, and
        a re-run finds the same records in the same shard (never twice)."""
        bad: list[BadRecord] = []

        def keep_bad(record: BadRecord) -> None:
            bad.append(record)  # the list of the shard being read

        on_bad = keep_bad if self.opts.on_bad_input == "quarantine" else None
        pending: tuple[int, pa.Table, list[BadRecord]] | None = None
        try:
            for shard, batch in enumerate(self.source.iter_batches(self.opts.shard_rows, on_bad)):
                if pending is not None:
                    yield self._ingest_shard(*pending)
                pending, bad = (shard, batch, bad), []
            if pending is None:  # nothing to run on: say so rather than write an empty output
                raise InputError("input has no rows", path=", ".join(self.source.paths))
            yield self._ingest_shard(pending[0], pending[1], pending[2] + bad)
            rows = sum(self.records[(0, k)].stats.rows_out for k in range(pending[0] + 1))
            self.store.notify(
                journal.InputRead(self.store.session, shards=pending[0] + 1, rows=rows)
            )
        finally:
            self.n_shards = pending[0] + 1 if pending is not None else 0

    def _ingest_shard(self, shard: int, batch: pa.Table, bad: list[BadRecord]) -> int:
        """Write and commit one input shard, unless the last run wrote the same rows and
        quarantined the same records: a shard is identified by its content, so fixing one
        corrupt file of an input recomputes only the shards whose rows changed."""
        fp = fingerprint(self.ingest_fp, table_digest(batch), [(b.line, b.reason) for b in bad])
        if self.done(0, fp, INPUT_STEP, shard):
            self.quarantined += self.records[(0, shard)].stats.quarantined
            self.resumed(0, shard)
            return shard
        if ID in batch.column_names:
            raise InputError(
                f"the input has a column named {ID!r}, which prepflow reserves for row "
                "lineage; rename it",
                path=", ".join(self.source.paths),
            )
        first = shard * self.opts.shard_rows
        table = batch.append_column(ID, int64_range(first, first + batch.num_rows))
        self.store.write_input_shard(shard, table)
        self.store.write_quarantine(shard, bad)
        self.quarantined += len(bad)
        stats = StepStats(
            rows_in=table.num_rows + len(bad), rows_out=table.num_rows, quarantined=len(bad)
        )
        self.commit(0, fp, shard, stats)
        return shard

    # ---- global steps ------------------------------------------------------------------------

    def global_is_done(self, step: CompiledStep) -> bool:
        """A global step is done when every shard is, and no shard changed upstream."""
        shards = range(self.n_shards)
        if any(self.dirty.get(k) for k in shards) or not all(
            self.done(step.index, step.fingerprint, step.dirname, k) for k in shards
        ):
            return False
        for k in shards:
            self.resumed(step.index, k)
        return True

    def run_global(
        self,
        step: CompiledStep,
        summaries: Callable[[Callable[[int], Any], Iterable[int]], Iterable[Any]],
        on_commit: Callable[[Callable[[], None]], None] = lambda commit: commit(),
    ) -> None:
        """The global protocol: ``summaries(summarize, shards)`` yields every shard's summary
        (the executor chooses where and how many at once; order does not matter), they are
        merged and finalized, then each shard is processed and committed (``on_commit`` runs
        the commit where the executor needs it, e.g. on its event loop)."""
        op = self.op(step)
        spent = [0.0] * self.n_shards  # the passes' time is the step's time too: charge each shard
        source = self.input_dir(step.index)

        writer = self.store.writer() if self.opts.profile else None

        def summarize(k: int) -> Any:
            batch = self.store.read_shard(source, k)
            with profiled(writer, step.dirname, k, "summarize"):
                t0 = time.perf_counter()
                summary = op.summarize(batch)
                spent[k] += time.perf_counter() - t0
            return summary

        t0 = time.perf_counter()
        state = functools.reduce(op.merge, summaries(summarize, range(self.n_shards)))
        with profiled(writer, step.dirname, 0, "finalize"):  # of every shard: filed under 0
            op.finalize(state)
        del state
        share = (time.perf_counter() - t0 - sum(spent)) / max(1, self.n_shards)
        for k in range(self.n_shards):
            batch = self.store.read_shard(source, k)
            with profiled(writer, step.dirname, k, "run"):
                t1 = time.perf_counter()
                result = apply(op, batch)
                seconds = time.perf_counter() - t1 + max(0.0, share) + spent[k]
            stats = stats_of(op, batch.num_rows, result, seconds)
            self.store.write_result(step.dirname, k, result)
            on_commit(functools.partial(self.commit, step.index, step.fingerprint, k, stats))


async def _count(n: int) -> AsyncIterator[int]:
    for k in range(n):
        yield k


async def _released(work: Awaitable[None], sem: asyncio.Semaphore) -> None:
    try:
        await work
    finally:
        sem.release()


async def _gather_or_cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for every task; when one fails, cancel the others and raise its error."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def check_quarantine_policy(value: str) -> str:
    if value not in ("stop", "quarantine"):
        raise PrepflowError(f"--on-bad-input must be 'stop' or 'quarantine', not {value!r}")
    return value
