"""The Ray executor (``--executor ray [--ray-address ADDR]``): the same plan, run directory,
report and resume as ``local``, with the work spread over a Ray cluster.

* **Where**: with an address it joins that cluster (``ray start --head`` printed it); without
  one it starts a local cluster sized to this machine (``--workers`` CPUs, default all), bound
  to 127.0.0.1, and stops it at the end. The run directory must be visible at the same path on
  every node (a shared file system): workers write their steps' shard files there themselves
  (``ShardWriter``), and this process (the driver) alone holds the lock and commits each
  (step, shard) to the journal once its files are in place, so a killed driver resumes exactly
  like a local run.
* **Row-local steps**: consecutive synchronous steps of a shard run as one Ray task over that
  shard's file, with the same code as ``local`` (``run_sync``). Tasks per shard, not Ray
  Data's re-blocked batches: a shard is the unit of resume and of the journal, and row keys
  (``_id`` plus the rank among siblings *within a shard*) must see whole shards; re-blocking
  would change neither the rows nor the speed of these Arrow-in, Arrow-out steps, but it would
  break both.
* **LLM steps**: consecutive async steps of a shard run in an async actor, many shards at once,
  rows streaming from one step to the next (``run_async_chain``). The actor opens its own
  client on the run's response cache (SQLite, WAL: every answer is committed as it arrives, and
  several processes may read and write it at once). There is one such actor, so the client's
  concurrency limit, its budget and its in-flight dedup are the run's: no request is paid
  twice, and a restarted actor finds every finished answer in the cache. Its usage is added to
  the report.
* **Global steps**: dedup filters run as a distributed stage (:mod:`.ray_dedup`: summaries in
  parallel, LSH buckets shuffled by key, verified pairs, distributed connected components);
  their decisions equal ``finalize``'s. Other global operators are summarized in parallel tasks
  and merged here (the global protocol of the base class).
* **Faults**: a task whose worker dies is retried (its files are rewritten whole under the same
  names); the actor is restarted and its shard retried (cached answers are free).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import itertools
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from prepflow.core.errors import ConfigError
from prepflow.core.operator import StepStats
from prepflow.data.runstore import read_shard
from prepflow.engine.compiler import CompiledStep
from prepflow.engine.executors import ray_dedup as dd
from prepflow.engine.executors.base import Executor, Stage
from prepflow.engine.executors.worker import (
    OpSpec,
    importable,
    init_worker,
    op_spec,
    run_job,
    worker_ops,
)
from prepflow.engine.steprun import ShardJob, run_async_chain, run_sync

log = logging.getLogger("prepflow")

#: Retries of a task whose worker died (a killed process, a lost node).
TASK_RETRIES = 3
#: Shards an LLM actor works on at once (its client bounds the requests in flight).
LLM_SHARDS_IN_FLIGHT = 64
#: Rows whose bucket rows one shuffle partition of a distributed dedup holds (at most; MinHash's
#: 28 bands make that about 67 MB of bucket rows).
PARTITION_ROWS = 100_000
#: The workers' environment: a task reserves its CPUs, so the Rust thread pools some operators
#: use (rensa's MinHash) get one thread per task, as Ray already does for OpenMP.
WORKER_ENV = {"env_vars": {"RAYON_NUM_THREADS": "1"}}
#: Environment of a local cluster: bind every Ray process to 127.0.0.1 (read when Ray is first
#: imported, so it is set before).
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'prepflow[ray]'") from None
    return ray


# ---- resources -------------------------------------------------------------------------------

RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
_UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


class Resources:
    """Ray resources per step, from the pipeline's ``settings.ray``::

        settings:
          ray:
            resources:                 # by step name: what each of its tasks reserves
              language_id: {num_cpus: 1, memory: 2GiB}
            llm: {num_gpus: 1}         # the LLM actor (and the model server it launches)

    A task runs consecutive steps of a shard, so it reserves the most any of them asks. Tasks
    reserve one CPU by default, the LLM actor none (it waits on the network)."""

    def __init__(self, settings: dict[str, Any], step_names: list[str]) -> None:
        conf = settings.get("ray") or {}
        if not isinstance(conf, dict) or set(conf) - {"resources", "llm"}:
            raise ConfigError("settings.ray: expected a mapping with 'resources' and/or 'llm'")
        per_step = conf.get("resources") or {}
        unknown = sorted(set(per_step) - set(step_names))
        if unknown:
            raise ConfigError(
                f"settings.ray.resources: no step named {', '.join(unknown)} "
                f"(steps: {', '.join(step_names)})"
            )
        self.per_step = {
            name: _checked(f"settings.ray.resources.{name}", r) for name, r in per_step.items()
        }
        self.llm = {"num_cpus": 0, **_checked("settings.ray.llm", conf.get("llm") or {})}

    def of(self, steps: list[CompiledStep]) -> dict[str, Any]:
        out: dict[str, Any] = {"num_cpus": 1}
        for s in steps:
            for key, value in self.per_step.get(s.name, {}).items():
                out[key] = max(out.get(key, 0), value)
        return out


def _checked(where: str, given: Any) -> dict[str, Any]:
    if not isinstance(given, dict) or set(given) - set(RESOURCE_KEYS):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(RESOURCE_KEYS)}")
    out = {}
    for key, value in given.items():
        if key == "memory" and isinstance(value, str):
            value = _size(f"{where}.memory", value)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}.{key}: expected a number >= 0, not {value!r}")
        out[key] = value
    return out


def _size(where: str, text: str) -> int:
    """Bytes of a size written like ``2GiB``, ``512MB`` or ``1000000``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B)?\s*", text)
    if m is None:
        raise ConfigError(f"{where}: {text!r} is not a size like 2GiB or 512MB")
    return int(float(m[1]) * _UNITS.get(m[2] or "", 1))


# ---- in the workers ----------------------------------------------------------------------------

_READY: set[tuple[tuple[str, ...], str | None]] = set()


def _init(setup: tuple[list[str], str | None, str]) -> None:
    """Once per worker process: the driver's working directory when this node has it (relative
    paths in parameters mean what they meant there), and the pipeline's user operators."""
    imports, base, cwd = setup
    key = (tuple(imports), base)
    if key in _READY:
        return
    if os.path.isdir(cwd):
        os.chdir(cwd)
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
    init_worker(imports, base, None)
    _READY.add(key)


def _task_job(setup: Any, job: ShardJob, specs: list[OpSpec]) -> list[StepStats]:
    _init(setup)
    return run_job(job, specs)


def _task_summarize(setup: Any, spec: OpSpec, source: str) -> Any:
    _init(setup)
    return worker_ops([spec])[0].summarize(_read(source))


def _task_dedup(setup: Any, fn: Callable[..., Any], *args: Any) -> Any:
    _init(setup)
    return fn(*args)


def _task_apply(
    setup: Any, job: ShardJob, spec: OpSpec, summary: dd.Summary, verdict: tuple[np.ndarray, ...]
) -> list[StepStats]:
    _init(setup)
    op = worker_ops([spec])[0]
    op.install(summary[0], *verdict)
    return run_sync(job, [op])


def _read(source: str) -> Any:
    return read_shard(Path(source))


class _LLMWorker:
    """Runs shards through consecutive async steps with its own client (an async actor)."""

    def __init__(self, setup: Any, serving: Any) -> None:
        _init(setup)
        self.serving = serving

    async def run(self, job: ShardJob, specs: list[OpSpec]) -> list[StepStats]:
        ops = worker_ops(specs, self.serving)
        stats: list[StepStats | None] = [None] * len(ops)

        def on_step(position: int, st: StepStats) -> None:
            stats[position] = st

        loop = asyncio.get_running_loop()
        await run_async_chain(
            job, ops, lambda p: loop.run_in_executor(None, _read, str(p)), on_step
        )
        return [s for s in stats if s is not None]

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {}
        for client in getattr(self.serving, "clients", []):  # the run's and its siblings'
            for key, value in client.stats.to_dict().items():
                if isinstance(value, dict):
                    into = usage.setdefault(key, {})
                    for k, v in value.items():
                        into[k] = into.get(k, 0) + v
                else:
                    usage[key] = usage.get(key, 0) + value
        return usage

    async def close(self) -> None:
        await self.serving.aclose()


# ---- the driver --------------------------------------------------------------------------------


class RayExecutor(Executor):
    """Runs the plan on a Ray cluster (see the module docstring)."""

    name = "ray"

    def prepare(self) -> None:
        self.resources = Resources(self.plan.spec.settings, [s.name for s in self.plan.steps])
        if self.opts.address is None:
            for key, value in LOCAL_ENV.items():
                os.environ.setdefault(key, value)
        ray = self.ray = _import_ray()
        self._started = False
        if not ray.is_initialized():
            if self.opts.address is None:
                ray.init(
                    address="local",
                    num_cpus=self.opts.workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    runtime_env=WORKER_ENV,
                )
            else:
                ray.init(
                    address=self.opts.address,
                    log_to_driver=False,
                    configure_logging=False,
                    runtime_env=WORKER_ENV,
                )
            self._started = True
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        spec = self.plan.spec
        self.setup = (
            list(spec.imports),
            str(spec.source.parent.resolve()) if spec.source else None,
            os.getcwd(),
        )
        self.writer = dataclasses.replace(self.store.writer(), run_dir=self.store.dir.resolve())
        retry = {"max_retries": TASK_RETRIES, "retry_exceptions": False}
        self._retry = retry
        # Per-shard tasks read and write the shared run directory, so no node holds their data:
        # spread them over the nodes (Ray's default packs a node first, and a fast stream of
        # small shards would then never leave the driver's node).
        self._per_shard = {**retry, "scheduling_strategy": "SPREAD"}
        self._job = ray.remote(_task_job)
        self._summarize = ray.remote(_task_summarize)
        self._apply = ray.remote(_task_apply)
        self._dedup = ray.remote(_task_dedup)
        self._llm: Any = None
        self.usage: dict[str, Any] = {}
        #: per distributed dedup step, seconds per stage (also logged)
        self.stage_seconds: dict[str, dict[str, float]] = {}
        self._threads = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="prepflow")

    def finish(self) -> Any:
        try:
            if self._llm is not None:
                self.usage = self._get(self._llm.usage.remote())
                self._get(self._llm.close.remote())
                self.ray.kill(self._llm)
        finally:
            self._threads.shutdown(wait=True, cancel_futures=True)
            if self._started:
                self.ray.shutdown()
        return dataclasses.replace(super().finish(), usage=self.usage)

    # -- helpers --

    def _get(self, ref: Any) -> Any:
        """``ray.get``, raising the task's own exception (a ConfigError stays one)."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None

    async def _await(self, ref: Any) -> Any:
        try:
            return await ref
        except self.ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None

    def _spec(self, step: CompiledStep) -> OpSpec:
        """The step's spec with absolute paths (a worker's working directory may differ)."""
        fp, module, name, params, bindings, context = op_spec(step, self.context(step))
        context = dataclasses.replace(context, scratch=context.scratch.resolve())
        return fp, module, name, params, bindings, context

    def _source(self, step_index: int, shard: int) -> Path:
        return self.store.shard_path("steps", self.input_dir(step_index), shard).resolve()

    def _job_of(self, todo: list[CompiledStep], shard: int) -> ShardJob:
        return ShardJob(
            self.writer,
            shard,
            self._source(todo[0].index, shard),
            [s.dirname for s in todo],
            profile=self.opts.profile,
        )

    # -- per-shard stages --

    async def _run_stage(self, mode: str, steps: list[CompiledStep], shard: int) -> None:
        todo = self.todo(steps, shard)
        if not todo:
            return
        job = self._job_of(todo, shard)
        if mode == "async":
            self.dirty[shard] = True
            results = await self._await(self._llm_actor().run.remote(job, self._specs(todo)))
        elif all(importable(s) for s in todo):
            task = self._job.options(**self.resources.of(todo), **self._per_shard)
            results = await self._await(task.remote(self.setup, job, self._specs(todo)))
        else:  # an operator only this process can build: run it here, like local's threads
            ops = [self.op(s) for s in todo]
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._threads, run_sync, job, ops)
        for s, stats in zip(todo, results, strict=True):
            self.commit(s.index, s.fingerprint, shard, stats)

    def _specs(self, steps: list[CompiledStep]) -> list[OpSpec]:
        if not all(importable(s) for s in steps):
            names = ", ".join(s.name for s in steps if not importable(s))
            raise ConfigError(
                f"--executor ray: the operators of {names} are defined in __main__ or a "
                "function, which the cluster's workers cannot import; define them in a module"
            )
        return [self._spec(s) for s in steps]

    def _llm_actor(self) -> Any:
        if self._llm is None:
            step = next(s for s in self.plan.steps if s.mode == "async")
            serving = self.context(step).serving
            serving = getattr(serving, "root", serving)  # the worker picks each step's own
            actor = self.ray.remote(_LLMWorker).options(
                **self.resources.llm,
                max_concurrency=LLM_SHARDS_IN_FLIGHT,
                max_restarts=TASK_RETRIES,
                max_task_retries=TASK_RETRIES,
            )
            self._llm = actor.remote(self.setup, serving)
        return self._llm

    async def _run_shard(self, shard: int, stages: list[Stage]) -> None:
        for mode, steps in stages:
            await self._run_stage(mode, steps, shard)

    # -- global steps --

    async def _run_global(self, step: CompiledStep) -> None:
        if self.global_is_done(step):
            return
        if dd.shardable(step.op) and importable(step):
            await self._distributed_dedup(step)
            return
        spec = self._spec(step) if importable(step) else None

        def summaries(summarize: Callable[[int], Any], shards: Iterable[int]) -> Iterable[Any]:
            if spec is None:
                return map(summarize, shards)
            refs = [
                self._summarize.options(**self.resources.of([step]), **self._per_shard).remote(
                    self.setup, spec, str(self._source(step.index, k))
                )
                for k in shards
            ]
            return (self._get(r) for r in refs)

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.run_global, step, summaries, loop.call_soon_threadsafe)

    async def _distributed_dedup(self, step: CompiledStep) -> None:
        """The stages of :mod:`.ray_dedup`, then each shard filtered with its part of the
        verdict and committed. Each stage ends at a barrier; their times are logged."""
        t0 = time.perf_counter()
        laps: dict[str, float] = {}
        spec, setup, ray = self._spec(step), self.setup, self.ray
        options = {**self.resources.of([step]), **self._retry}

        def task(fn: Callable[..., Any], *args: Any, returns: int | None = None) -> Any:
            """``fn(*args)`` in a task; ``returns``: ``fn`` gives a list of that many parts,
            each its own object (a list of refs, however many)."""
            if returns is None:
                return self._dedup.options(**options).remote(setup, fn, *args)
            several = {**options, "num_returns": returns}
            refs = self._dedup.options(**several).remote(setup, _parts, fn, *args)
            return [refs] if returns == 1 else refs

        async def barrier(name: str, refs: list[Any]) -> None:
            if refs:
                await asyncio.to_thread(ray.wait, refs, num_returns=len(refs), fetch_local=False)
            laps[name] = time.perf_counter() - t0 - sum(laps.values())

        pairs_of = [
            task(dd.summarize, spec, str(self._source(step.index, k)), returns=2)
            for k in range(self.n_shards)
        ]
        summaries = [p[0] for p in pairs_of]
        bounds = await asyncio.gather(*(self._await(p[1]) for p in pairs_of))
        await barrier("summarize", summaries)
        present = sorted((b[0], b[1], k) for k, b in enumerate(bounds) if b is not None)
        for (_, hi, a), (lo, _, b) in itertools.pairwise(present):
            if lo <= hi:
                raise ConfigError(
                    f"{step.name}: shards {a} and {b} hold overlapping row keys; the "
                    "distributed dedup needs each input row's descendants in one shard"
                )
        dropped, heads, scores = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        if present:
            # shuffle partitions: enough for every CPU, and few enough rows in each that a
            # partition's bucket rows (bands x 24 bytes per row) stay small
            rows = sum(self.records[(step.index - 1, k)].stats.rows_out for _, _, k in present)
            parts = max(2 * self.cpus, -(-rows // PARTITION_ROWS))
            owners = dd.Owners([lo for lo, _, _ in present], min(parts, len(present)))
            groups: list[list[Any]] = [[] for _ in range(owners.parts)]
            for i, (_, _, k) in enumerate(present):
                groups[int(owners.group_of_position(i))].append(summaries[k])
            buckets = [
                task(dd.bucket, spec, summaries[k], parts, returns=parts) for _, _, k in present
            ]
            await barrier("bucket", [r for b in buckets for r in b])
            candidates = [task(dd.pairs, *(b[p] for b in buckets)) for p in range(parts)]
            await barrier("pairs", candidates)
            threshold = step.op.verify_threshold
            if threshold is not None:
                candidates = await self._join(task, spec, owners, groups, candidates, threshold)
                await barrier("verify", candidates)
            forests = candidates
            while len(forests) > 1:
                forests = [
                    task(dd.components, spec, *forests[i : i + 4])
                    for i in range(0, len(forests), 4)
                ]
            dropped, heads = await self._await(task(dd.components, spec, forests[0]))
            await barrier("components", [])
            if len(dropped):
                scored = [ray.put((dropped, heads))]
                dropped, heads, scores = await self._join(
                    task, spec, owners, groups, scored, None, keep_scores=True
                )
                order = np.argsort(dropped)
                dropped, heads, scores = dropped[order], heads[order], scores[order]
            await barrier("score", [])
        share = (time.perf_counter() - t0) / max(1, self.n_shards)
        await self._apply_verdict(step, spec, summaries, present, (dropped, heads, scores), share)
        await barrier("apply", [])
        self.stage_seconds[step.name] = laps
        log.info(
            "%s: distributed dedup over %d shards, %d rows dropped; %s",
            step.name,
            self.n_shards,
            len(dropped),
            ", ".join(f"{k} {v:.2f} s" for k, v in laps.items()),
        )

    async def _join(
        self,
        task: Callable[..., Any],
        spec: OpSpec,
        owners: dd.Owners,
        groups: list[list[Any]],
        edges: list[Any],
        threshold: float | None,
        keep_scores: bool = False,
    ) -> Any:
        """Score pairs through their owner shards (two hops); with ``threshold`` the pairs that
        reach it, as edge refs; with ``keep_scores`` the (u, v, score) arrays, gathered."""
        parts = owners.parts
        split = [task(dd.split_edges, owners, e, returns=parts) for e in edges]
        hop1 = [
            task(dd.attach, owners, len(split), *(s[g] for s in split), *groups[g], returns=parts)
            for g in range(parts)
        ]
        hop2 = [
            task(dd.score, spec, threshold, len(hop1), *(h[g] for h in hop1), *groups[g])
            for g in range(parts)
        ]
        if not keep_scores:
            return [task(_edges_only, h) for h in hop2]
        out = await asyncio.gather(*(self._await(h) for h in hop2))
        return tuple(np.concatenate([o[i] for o in out]) for i in range(3))

    async def _apply_verdict(
        self,
        step: CompiledStep,
        spec: OpSpec,
        summaries: list[Any],
        present: list[tuple[int, int, int]],
        verdict: tuple[np.ndarray, np.ndarray, np.ndarray],
        share: float,
    ) -> None:
        """Filter each shard with the rows of the verdict it owns, and commit it."""
        dropped, heads, scores = verdict
        starts = [lo for lo, _, _ in present]
        position = {k: i for i, (_, _, k) in enumerate(present)}
        owner = np.searchsorted(np.asarray(starts, np.int64), dropped, side="right") - 1

        async def one(k: int) -> None:
            mine = owner == position.get(k, -1)
            job = self._job_of([step], k)
            part = (dropped[mine], heads[mine], scores[mine])
            (stats,) = await self._await(
                self._apply.options(**self.resources.of([step]), **self._per_shard).remote(
                    self.setup, job, spec, summaries[k], part
                )
            )
            stats.seconds += share
            self.commit(step.index, step.fingerprint, k, stats)

        await asyncio.gather(*(one(k) for k in range(self.n_shards)))

    # -- the run --

    async def execute(self) -> None:
        in_flight = self.opts.shards_in_flight or (
            LLM_SHARDS_IN_FLIGHT if self.plan.needs_llm else 2 * self.cpus
        )
        await self.stream(in_flight, self._run_shard, self._run_global, self._threads)


def _parts(fn: Callable[..., list[Any]], *args: Any) -> Any:
    """``fn``'s list of parts as a task's several return values (one: the part itself)."""
    out = fn(*args)
    return out[0] if len(out) == 1 else tuple(out)


def _edges_only(scored: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dd.Edges:
    return scored[0], scored[1]
