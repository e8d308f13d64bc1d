"""The local streaming executor.

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
import multiprocessing as mp
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from prepflow.core.errors import ConfigError, InputError, PrepflowError
from prepflow.core.operator import ID, Operator
from prepflow.data.readers import BadRecord, Source
from prepflow.data.runstore import INPUT_STEP, RunStore, ShardRecord, read_shard
from prepflow.engine.compiler import CompiledStep, Plan, import_user_modules
from prepflow.engine.steprun import (
    ShardJob,
    apply,
    run_async_chain,
    run_sync,
    stats_of,
    write_result,
)
from prepflow.sandbox import ProcessSandbox, open_sandbox

#: Estimated input rows from which CPU-heavy steps run in worker processes (when there are
#: several workers and shards); a default shard's worth.
PROCESS_MIN_ROWS = 50_000
#: Shards in flight at once when LLM steps are present: while one shard's step waits on its
#: slowest answer, the others' requests keep the serving busy (a shard in flight holds a few
#: small tables and its queued requests).
LLM_SHARDS_IN_FLIGHT = 64


@dataclass
class ExecOptions:
    shard_rows: int = 50_000
    workers: int = 0  # 0: one per core
    on_bad_input: str = "stop"  # or "quarantine"
    shards_in_flight: int = 0  # 0: 2 per worker, LLM_SHARDS_IN_FLIGHT with LLM steps
    progress: bool = False

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass
class RunContext:
    """Handed to ``Operator.setup``: where the run lives and, for LLM steps, the serving client.

    ``sandbox`` is opened on first use (only steps that run code pay for its workers) with the
    pipeline's ``settings: {sandbox: {strict: ..., workers: ...}}``, and closed by ``close``.
    """

    run_dir: Path
    serving: Any = None
    sandbox_settings: dict[str, Any] = field(default_factory=dict)
    _sandbox: ProcessSandbox | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sandbox_settings, dict):
            raise ConfigError("settings.sandbox must be a mapping, e.g. {strict: true}")
        if unknown := set(self.sandbox_settings) - {"strict", "workers"}:
            raise ConfigError(
                f"settings.sandbox: unknown key(s) {sorted(unknown)} (allowed: strict, workers)"
            )

    @property
    def sandbox(self) -> ProcessSandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = open_sandbox(**self.sandbox_settings)
            return self._sandbox

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None


# ---- worker side ------------------------------------------------------------------------------

_WORKER_OPS: dict[str, Operator] = {}


def _init_worker(imports: list[str], base: str | None) -> None:
    import_user_modules(imports, Path(base) if base else None)


OpSpec = tuple[str, str, str, dict, dict]  # (fingerprint, module, op name, params, bindings)


def _worker_ops(specs: list[OpSpec], run_dir: Path) -> list[Operator]:
    """Build (once per process) the bound operators of a job from their specs."""
    import importlib

    from prepflow.core.registry import registry

    ops = []
    for fp, module, name, params, bindings in specs:
        op = _WORKER_OPS.get(fp)
        if op is None:
            if module not in sys.modules and not module.startswith("prepflow_user_"):
                importlib.import_module(module)  # operators defined outside prepflow.operators
            op = registry.get(name)(**params).bind(bindings)
            op.setup(RunContext(run_dir))
            _WORKER_OPS[fp] = op
        ops.append(op)
    return ops


def _run_job_in_worker(job: ShardJob, specs: list[OpSpec]) -> list[dict[str, Any]]:
    return run_sync(job, _worker_ops(specs, job.run_dir))


# ---- orchestration ----------------------------------------------------------------------------

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


class Executor:
    def __init__(
        self,
        plan: Plan,
        source: Source,
        store: RunStore,
        options: ExecOptions,
        ingest_fingerprint: str,
        ctx: RunContext,
        on_commit: Callable[[int, dict[str, Any], bool], None] | None = None,
    ) -> None:
        self.plan, self.source, self.store, self.opts = plan, source, store, options
        self.ingest_fp = ingest_fingerprint
        self.ctx = ctx
        self.on_commit = on_commit or (lambda step, stats, resumed: None)
        self.records = store.records()
        self.dirty: dict[int, bool] = {}  # shard -> recomputed at some earlier step this session
        self.n_shards = 0
        self.quarantined = 0
        self.workers = options.resolved_workers()
        # no more worker processes than shards: a process per idle core only costs start-up time
        estimated_rows = source.estimate_rows()
        expected_shards = -(-estimated_rows // options.shard_rows)
        self.pool_size = max(1, min(self.workers, expected_shards))
        # a worker process costs ~1 s of start-up and ~200 MB: worth it once there is at least a
        # full default shard of work; below that the shards share threads (the Arrow and numpy
        # kernels that do most text work release the GIL)
        self.processes = self.pool_size > 1 and estimated_rows >= PROCESS_MIN_ROWS
        self._pool: cf.Executor | None = None
        self._threads = cf.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="prepflow"
        )
        self._main_ops: dict[int, Operator] = {}

    # -- helpers --

    def _done(self, step_index: int, fp: str, step_dir: str, shard: int) -> bool:
        rec = self.records.get((step_index, shard))
        return (
            rec is not None
            and rec.fingerprint == fp
            and not self.dirty.get(shard, False)
            and self.store.shard_path("steps", step_dir, shard).exists()
        )

    def _commit(self, step_index: int, fp: str, shard: int, stats: dict[str, Any]) -> None:
        self.store.commit(step_index, shard, fp, stats)
        self.records[(step_index, shard)] = ShardRecord(
            step_index, shard, fp, stats, self.store.session
        )
        self.on_commit(step_index, stats, False)

    def _resumed(self, step_index: int, shard: int) -> None:
        self.on_commit(step_index, self.records[(step_index, shard)].stats, True)

    def _input_path(self, step_index: int, shard: int) -> Path:
        prev = INPUT_STEP if step_index == 1 else self.plan.steps[step_index - 2].dirname
        return self.store.shard_path("steps", prev, shard)

    def _main_op(self, step: CompiledStep) -> Operator:
        op = self._main_ops.get(step.index)
        if op is None:
            op = step.op
            op.setup(self.ctx)
            self._main_ops[step.index] = op
        return op

    def _use_processes(self, steps: list[CompiledStep]) -> bool:
        """CPU-heavy steps run in worker processes when there is parallelism to gain (several
        workers and shards) and enough work to pay for their start-up (see ``processes``).
        Operators defined in ``__main__`` or a function cannot be imported by a worker, so
        they stay in threads."""
        if not self.processes or not any(s.op.cpu_heavy for s in steps):
            return False
        return all(
            type(s.op).__module__ != "__main__" and "<locals>" not in type(s.op).__qualname__
            for s in steps
        )

    def _pool_for(self, steps: list[CompiledStep]) -> cf.Executor:
        if not self._use_processes(steps):
            return self._threads
        if self._pool is None:
            spec = self.plan.spec
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.pool_size,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(spec.imports, str(spec.source.parent) if spec.source else None),
            )
        return self._pool

    # -- ingest --

    def _ingest(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[int | None]) -> None:
        """Cut the input into Parquet shards (in a thread); put each shard index on the queue."""
        bad: list[BadRecord] = []
        on_bad = bad.append if self.opts.on_bad_input == "quarantine" else None
        shard = -1
        try:
            for shard, batch in enumerate(
                self.source.iter_batches(self.opts.shard_rows, on_bad=on_bad)
            ):
                first = shard * self.opts.shard_rows
                if self._done(0, self.ingest_fp, INPUT_STEP, shard):
                    self.quarantined += self.records[(0, shard)].stats.get("quarantined", 0)
                    self.on_commit(0, self.records[(0, shard)].stats, True)
                else:
                    if ID in batch.column_names:
                        raise InputError(
                            f"the input has a column named {ID!r}, which prepflow reserves for "
                            "row lineage; rename it",
                            path=", ".join(self.source.paths),
                        )
                    table = batch.append_column(
                        ID, pa.array(range(first, first + batch.num_rows), pa.int64())
                    )
                    self.store.write_shard("steps", INPUT_STEP, shard, table)
                    self._write_quarantine(shard, bad)
                    stats = {
                        "rows_in": table.num_rows + len(bad),
                        "rows_out": table.num_rows,
                        "dropped": 0,
                        "failed": 0,
                        "quarantined": len(bad),
                        "seconds": 0.0,
                    }
                    self.quarantined += len(bad)
                    self.dirty[shard] = True
                    loop.call_soon_threadsafe(self._commit, 0, self.ingest_fp, shard, stats)
                bad.clear()
                asyncio.run_coroutine_threadsafe(queue.put(shard), loop).result()
            if shard == -1:  # nothing to run on: say so rather than write an empty output
                raise InputError("input has no rows", path=", ".join(self.source.paths))
            if bad:  # malformed records after the last good row belong to the last shard
                self._write_quarantine(shard, bad, append=True)
                self.quarantined += len(bad)
        finally:
            self.n_shards = shard + 1
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    def _write_quarantine(self, shard: int, bad: list[BadRecord], append: bool = False) -> None:
        path = self.store.quarantine_path(shard)
        if not bad:
            if not append:
                path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab" if append else "wb") as f:
            for b in bad:
                f.write(
                    orjson.dumps(
                        {
                            "path": b.path,
                            "line": b.line,
                            "reason": b.reason,
                            "raw": b.raw.decode("utf-8", "replace"),
                        }
                    )
                    + b"\n"
                )

    # -- per-shard stages --

    async def _run_stage(self, stage: Stage, shard: int) -> None:
        mode, steps = stage
        todo = [s for s in steps if not self._done(s.index, s.fingerprint, s.dirname, shard)]
        if todo:  # once one step recomputes, every later step of this shard does too
            first = steps.index(todo[0])
            todo = steps[first:]
        for s in steps[: len(steps) - len(todo)]:
            self._resumed(s.index, shard)
        if not todo:
            return
        job = ShardJob(
            self.store.dir,
            shard,
            self._input_path(todo[0].index, shard),
            [(s.index, s.dirname) for s in todo],
        )
        loop = asyncio.get_running_loop()
        if mode == "async":
            self.dirty[shard] = True

            def on_step(position: int, stats: dict[str, Any]) -> None:
                s = todo[position]
                self._commit(s.index, s.fingerprint, shard, stats)

            await run_async_chain(
                job,
                [self._main_op(s) for s in todo],
                lambda p: loop.run_in_executor(self._threads, read_shard, p),
                on_step,
            )
            return
        pool = self._pool_for(todo)
        if pool is self._threads:
            ops = [self._main_op(s) for s in todo]
            results = await loop.run_in_executor(pool, run_sync, job, ops)
        else:
            specs = [
                (
                    s.fingerprint,
                    type(s.op).__module__,
                    s.op.name,
                    s.op.params.model_dump(),
                    s.op.bindings,
                )
                for s in todo
            ]
            results = await loop.run_in_executor(pool, _run_job_in_worker, job, specs)
        self.dirty[shard] = True
        for s, stats in zip(todo, results, strict=True):
            stats.pop("step")
            self._commit(s.index, s.fingerprint, shard, stats)

    async def _run_shard(self, shard: int, stages: list[Stage], sem: asyncio.Semaphore) -> None:
        try:
            for stage in stages:
                await self._run_stage(stage, shard)
        finally:
            sem.release()

    def _run_global(self, step: CompiledStep) -> None:
        """Observe every shard in order, then process each (in a thread: keeps the loop free).

        The shards are read and summarized (``Operator.summarize``: fingerprints, signatures)
        a few at a time on the worker threads; only ``absorb`` runs one shard after another.
        """
        shards = range(self.n_shards)
        if not any(self.dirty.get(k) for k in shards) and all(
            self._done(step.index, step.fingerprint, step.dirname, k) for k in shards
        ):
            for k in shards:
                self._resumed(step.index, k)
            return
        op = self._main_op(step)
        spent = [0.0] * self.n_shards  # the passes' time is the step's time too: charge each shard

        def summarize(k: int) -> Any:
            t0 = time.perf_counter()
            summary = op.summarize(read_shard(self._input_path(step.index, k)))
            spent[k] += time.perf_counter() - t0
            return summary

        for k, summary in enumerate(_in_order(self._threads, summarize, shards, self.workers)):
            t0 = time.perf_counter()
            op.absorb(summary)
            spent[k] += time.perf_counter() - t0
        t0 = time.perf_counter()
        op.finalize()
        finalize_share = (time.perf_counter() - t0) / max(1, self.n_shards)
        for k in shards:
            batch = read_shard(self._input_path(step.index, k))
            t0 = time.perf_counter() - spent[k] - finalize_share
            result = apply(op, batch)
            stats = stats_of(op, batch.num_rows, result, time.perf_counter() - t0).to_dict()
            write_result(self.store.dir, step.dirname, k, result)
            self.dirty[k] = True
            self._loop.call_soon_threadsafe(self._commit, step.index, step.fingerprint, k, stats)

    # -- the run --

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        stages = stages_of(self.plan.steps)
        phases: list[list[Stage]] = [[]]
        globals_: list[CompiledStep] = []
        for st in stages:
            if st[0] == "global":
                globals_.append(st[1][0])
                phases.append([])
            else:
                phases[-1].append(st)
        in_flight = self.opts.shards_in_flight or (
            LLM_SHARDS_IN_FLIGHT if self.plan.needs_llm else 2 * self.workers
        )
        try:
            for p, phase in enumerate(phases):
                sem = asyncio.Semaphore(in_flight)
                tasks: list[asyncio.Task[None]] = []
                if p == 0:
                    queue: asyncio.Queue[int | None] = asyncio.Queue()
                    ingest = self._loop.run_in_executor(None, self._ingest, self._loop, queue)
                    while (shard := await queue.get()) is not None:
                        await sem.acquire()
                        tasks.append(asyncio.create_task(self._run_shard(shard, phase, sem)))
                    await ingest
                else:
                    await asyncio.to_thread(self._run_global, globals_[p - 1])
                    for shard in range(self.n_shards):
                        await sem.acquire()
                        tasks.append(asyncio.create_task(self._run_shard(shard, phase, sem)))
                await _gather_or_cancel(tasks)
        finally:
            self._threads.shutdown(wait=True, cancel_futures=True)
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            for op in self._main_ops.values():
                op.teardown()

    def final_shards(self) -> list[Path]:
        last = self.plan.steps[-1].dirname
        return [self.store.shard_path("steps", last, k) for k in range(self.n_shards)]

    def remove_stale_shards(self) -> None:
        """Shards beyond the current input (a shorter input than last time) must not leak into output."""
        for step_dir in [INPUT_STEP, *(s.dirname for s in self.plan.steps)]:
            for kind in ("steps", "dropped", "failures"):
                root = self.store.dir / kind / step_dir
                if root.exists():
                    for f in root.glob("shard-*.parquet"):
                        if int(f.stem.split("-")[1]) >= self.n_shards:
                            f.unlink()


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


async def _gather_or_cancel(tasks: list[asyncio.Task[None]]) -> None:
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
