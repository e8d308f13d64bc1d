"""The local streaming executor (``--executor local``, the default).

The input is cut into shards of ``shard_rows`` rows (shard k holds input rows [k*S, (k+1)*S)).
Each shard flows through the steps on its own, so memory is bounded by the shards in flight, not
by the dataset. Consecutive synchronous steps run as one job (in a worker process when a step is
CPU-heavy and there are several workers and shards to spread, else in a thread). Consecutive
async (LLM) steps run on the event loop, many shards at a time, each row moving on to the next
step as soon as its own answers are in (``run_async_chain``), so requests stay in flight across
batches and steps. A global step waits for every shard, summarizes them a few at a time, absorbs
them in order, then processes each one.

Every finished (step, shard) is journaled with the step's fingerprint. On a re-run, a shard is
skipped at a step when its journal fingerprint matches; once a shard is recomputed at some step,
it is recomputed at every later step, and a global step whose input changed anywhere is
recomputed for every shard.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import functools
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prepflow.core.operator import StepStats
from prepflow.data import journal
from prepflow.data.runstore import read_shard
from prepflow.engine.compiler import CompiledStep
from prepflow.engine.executors.base import Executor, Stage, stages_of
from prepflow.engine.executors.worker import importable, init_worker, op_spec, run_job
from prepflow.engine.steprun import ShardJob, run_async_chain, run_sync

#: Estimated input rows from which CPU-heavy steps run in worker processes (when there are
#: several workers and shards); a default shard's worth.
PROCESS_MIN_ROWS = 50_000
#: Shards in flight at once when LLM steps are present: while one shard's step waits on its
#: slowest answer, the others' requests keep the serving busy (a shard in flight holds a few
#: small tables and its queued requests).
LLM_SHARDS_IN_FLIGHT = 64


# ---- orchestration ----------------------------------------------------------------------------


class LocalExecutor(Executor):
    """Streams shards through the steps on this machine (see the module docstring)."""

    name = "local"

    def prepare(self) -> None:
        self.workers = self.opts.workers or os.cpu_count() or 1
        # no more worker processes than shards: a process per idle core only costs start-up time
        estimated_rows = self.source.estimate_rows()
        expected_shards = -(-estimated_rows // self.opts.shard_rows)
        self.pool_size = max(1, min(self.workers, expected_shards))
        # a worker process costs ~1 s of start-up and ~200 MB: worth it once there is at least a
        # full default shard of work; below that the shards share threads (the Arrow and numpy
        # kernels that do most text work release the GIL)
        self.processes = self.pool_size > 1 and estimated_rows >= PROCESS_MIN_ROWS
        self._pool: cf.Executor | None = None
        self._threads = cf.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="prepflow"
        )

    def finish(self) -> Any:
        self._threads.shutdown(wait=True, cancel_futures=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return super().finish()

    # -- pools --

    def _use_processes(self, steps: list[CompiledStep]) -> bool:
        """CPU-heavy steps run in worker processes when there is parallelism to gain (several
        workers and shards) and enough work to pay for their start-up (see ``processes``).
        Operators defined in ``__main__`` or a function cannot be imported by a worker, so
        they stay in threads."""
        if not self.processes or not any(s.op.cpu_heavy for s in steps):
            return False
        return all(importable(s) for s in steps)

    def _pool_for(self, steps: list[CompiledStep]) -> cf.Executor:
        if not self._use_processes(steps):
            return self._threads
        if self._pool is None:
            spec = self.plan.spec
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.pool_size,
                mp_context=mp.get_context("spawn"),
                initializer=init_worker,
                initargs=(
                    spec.imports,
                    str(spec.source.parent) if spec.source else None,
                    os.getpid(),
                ),
            )
        return self._pool

    def set_up_ahead(self) -> None:
        for mode, steps in stages_of(self.plan.steps):
            if mode != "async" and not self._use_processes(steps):
                for s in steps:
                    self.op(s)

    # -- per-shard stages --

    async def _run_stage(self, stage: Stage, shard: int) -> None:
        mode, steps = stage
        todo = self.todo(steps, shard)
        if not todo:
            return
        job = ShardJob(
            self.store.writer(),
            shard,
            self.store.shard_path("steps", self.input_dir(todo[0].index), shard),
            [s.dirname for s in todo],
            profile=self.opts.profile,
        )
        loop = asyncio.get_running_loop()
        if mode == "async":
            self.dirty[shard] = True

            def on_step(position: int, stats: StepStats) -> None:
                s = todo[position]
                self.commit(s.index, s.fingerprint, shard, stats)

            def on_rows(position: int, rows: int) -> None:
                self.store.notify(
                    journal.RowsDone(
                        self.store.session, step=todo[position].index, shard=shard, rows=rows
                    )
                )

            await run_async_chain(
                job,
                [self.op(s) for s in todo],
                lambda p: loop.run_in_executor(self._threads, read_shard, p),
                on_step,
                on_rows,
            )
            return
        pool = self._pool_for(todo)
        if pool is self._threads:
            ops = [self.op(s) for s in todo]
            results = await loop.run_in_executor(pool, run_sync, job, ops)
        else:
            specs = [op_spec(s, self.context(s)) for s in todo]
            results = await loop.run_in_executor(pool, run_job, job, specs)
        for s, stats in zip(todo, results, strict=True):
            self.commit(s.index, s.fingerprint, shard, stats)

    async def _run_shard(self, shard: int, stages: list[Stage]) -> None:
        for stage in stages:
            await self._run_stage(stage, shard)

    def _run_global(self, step: CompiledStep) -> None:
        """Summarize every shard a few at a time on the worker threads, merge, finalize, then
        process each shard (in a thread: keeps the loop free)."""
        if self.global_is_done(step):
            return

        def summaries(summarize: Callable[[int], Any], shards: Iterable[int]) -> Iterator[Any]:
            return _in_order(self._threads, summarize, shards, self.workers)

        self.run_global(step, summaries, self._loop.call_soon_threadsafe)

    # -- the run --

    async def execute(self) -> None:
        self._loop = asyncio.get_running_loop()
        in_flight = self.opts.shards_in_flight or (
            LLM_SHARDS_IN_FLIGHT if self.plan.needs_llm else 2 * self.workers
        )
        await self.stream(
            in_flight, self._run_shard, functools.partial(asyncio.to_thread, self._run_global)
        )


def _in_order(
    pool: cf.Executor, fn: Callable[[int], Any], items: Iterable[int], window: int
) -> Iterator[Any]:
    """``fn`` of each item on ``pool``, at most ``window`` at once, results in item order."""
    pending: collections.deque[cf.Future[Any]] = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= max(1, window):
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
