"""Run a pipeline end to end: check, compile, execute (resuming), write the output and report.

Everything that could destroy or leak something is refused before the input is read: an output
that is the input (or inside or matched by it), an output over a directory, a run directory that
prepflow did not make or that another run holds. The run store owns the run directory; the
executor (chosen by name) owns scheduling; this module wires them and writes the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import glob
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prepflow import __version__
from prepflow.core.columns import schema_of
from prepflow.core.errors import BudgetExceeded, ConfigError, PrepflowError
from prepflow.core.registry import registry
from prepflow.data import journal
from prepflow.data.export import EXPORT_FORMATS, export
from prepflow.data.guard import check_outputs_spare_input
from prepflow.data.readers import HeadSource, open_input
from prepflow.data.runstore import (
    CACHE_FILE,
    INPUT_STEP,
    RunDirectoryError,
    RunStore,
    is_run_directory,
    read_invocation,
    read_records,
    read_shard,
)
from prepflow.data.writers import check_output, remove_stale_temps, write_output
from prepflow.engine import executors
from prepflow.engine.compiler import CompiledStep, Plan, compile_pipeline, fingerprint
from prepflow.engine.context import EngineContext, RunResources
from prepflow.engine.executors.base import ExecOptions, Execution, check_quarantine_policy
from prepflow.engine.progress import RunProgress
from prepflow.engine.report import RunReport, build_report, manifest, profile_markdown
from prepflow.engine.spec import PipelineSpec, load_yaml

if TYPE_CHECKING:  # the serving modules load only for a pipeline with LLM steps (start-up time)
    from prepflow.engine.estimate import Estimate
    from prepflow.serving import LazyServing
    from prepflow.serving.config import ServingConfig

#: A ``--limit N`` trial runs in ``<run dir><LIMIT_SUFFIX><N>``.
LIMIT_SUFFIX = "-limit"
ESTIMATE_SAMPLE_ROWS = 20  # input rows whose prompts are rendered to estimate prompt tokens
DEFAULT_SHARD_ROWS = 50_000
DEFAULT_LLM_SHARD_ROWS = 64  # LLM rows are slow and costly: resume at a fine grain
#: A small LLM input is cut into this many shards (of at least MIN_LLM_SHARD_ROWS rows): a step
#: that needs its whole input (``row_local`` false) waits for the slowest answer of its shard,
#: and other shards' requests keep the serving busy meanwhile.
SMALL_LLM_INPUT_SHARDS = 16
MIN_LLM_SHARD_ROWS = 8
#: An input smaller than one default shard is cut into a shard per worker, at most this many
#: (of at least MIN_AUTO_SHARD_ROWS rows), so that the cores share it. No more: each shard
#: pays every step's per-unit costs and warm-up (on 2 cores, benchmarks/text_pretrain_clean.py's
#: mixed input ran in 0.375 s as 2 shards against 0.44 s as 4). The run directory records the
#: count its first session chose (``run.json``), so a run resumes with the same shards anywhere.
SMALL_INPUT_SHARDS = 4
MIN_AUTO_SHARD_ROWS = 1_000


class RunInterrupted(PrepflowError):
    """SIGINT or SIGTERM stopped the run; what finished is kept and the run resumes."""

    def __init__(self, signum: int, run_dir: Path) -> None:
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name}: finished shards and LLM answers are kept in {run_dir}; "
            "run the same command again to resume"
        )

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class DiskFull(PrepflowError):
    """No space left while writing; nothing half-written is kept and the run resumes."""


def default_shard_rows(estimated_rows: int, needs_llm: bool, small_input_shards: int) -> int:
    """Rows per shard when neither the caller nor the pipeline sets them; an input smaller
    than a default shard is spread over ``small_input_shards`` (see :func:`_small_input_shards`)."""
    if needs_llm:
        spread = -(-estimated_rows // SMALL_LLM_INPUT_SHARDS)
        return min(DEFAULT_LLM_SHARD_ROWS, max(MIN_LLM_SHARD_ROWS, spread))
    spread = -(-estimated_rows // small_input_shards)
    return min(DEFAULT_SHARD_ROWS, max(MIN_AUTO_SHARD_ROWS, spread))


def _small_input_shards(run_dir: Path, workers: int, fresh: bool) -> int:
    """The shards a small input is spread over: what the run directory's first session chose,
    else one per worker (``workers`` 0: one per core), at most SMALL_INPUT_SHARDS."""
    if not fresh and is_run_directory(run_dir):
        with contextlib.suppress(RunDirectoryError):
            recorded = read_invocation(run_dir).get("small_input_shards")
            if isinstance(recorded, int) and recorded >= 1:
                return recorded
    return min(SMALL_INPUT_SHARDS, workers or os.cpu_count() or 1)


@dataclasses.dataclass
class _Run:
    """Everything decided before the run directory is touched."""

    spec: PipelineSpec
    plan: Plan
    source: Any
    input: str
    output: str
    run_dir: Path
    shard_rows: int
    ingest_fp: str
    executor: str
    serving: ServingConfig | None = None  # set when the plan has LLM steps
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)
    estimate: Estimate | None = None  # of the LLM work, for the report to compare
    export_format: str | None = None  # a fine-tuning format for the output (data.export)
    address: str | None = None  # the cluster the executor runs on, if it uses one
    small_input_shards: int = SMALL_INPUT_SHARDS  # see _small_input_shards


def run_pipeline(
    spec: PipelineSpec,
    *,
    input: str | Path,
    output: str | Path,
    run_dir: str | Path | None = None,
    overrides: list[str] | None = None,
    shard_rows: int | None = None,
    workers: int = 0,
    on_bad_input: str = "stop",
    progress: bool | None = None,
    fresh: bool = False,
    max_failure_rate: float = 0.1,
    retry_failed: bool = False,
    executor: str = "local",
    address: str | None = None,
    max_requests: int | None = None,
    max_cost: float | None = None,
    limit: int | None = None,
    export_format: str | None = None,
    profile: bool = False,
) -> RunReport:
    """Run ``spec`` on ``input`` into ``output``; an existing ``run_dir`` is resumed.

    ``retry_failed`` recomputes every (step, shard) that recorded failures (the LLM cache makes
    the rows that succeeded free), and everything downstream of them. ``max_requests`` and
    ``max_cost`` (USD, needs ``serving.prices``) bound what this invocation may ask the model:
    past them the run stops with :class:`BudgetExceeded`, keeping what finished (resumable).
    ``limit``: run on the first ``limit`` rows only, in the run directory ``<run_dir>-limit<N>``
    (a look at real output before the full run, which then reuses its cached LLM answers).
    ``address``: the cluster an executor that runs on one connects to (``ray``: ``host:port``);
    without it such an executor starts a local cluster sized to this machine.
    ``export_format`` (alpaca, sharegpt, chat, llamafactory, hf) writes ``output`` in a
    fine-tuning format instead of the format its name says (:mod:`prepflow.data.export`).
    ``profile`` runs every unit this session computes under cProfile and writes ``profile.md``
    in the run directory (:mod:`prepflow.engine.profiling`).
    """
    t0 = time.perf_counter()
    check_quarantine_policy(on_bad_input)
    if overrides:
        spec.apply_overrides(overrides)
    run = _prepare(
        spec, input, output, run_dir, shard_rows, executor, limit, export_format, workers, fresh
    )
    run.budget = {"max_requests": max_requests, "max_cost_usd": max_cost}
    run.address = address
    if max_cost is not None and (run.serving is None or not run.serving.prices):
        raise ConfigError("--max-cost needs prices: set serving.prices (USD per 1M tokens)")
    command = "retry" if retry_failed else "run"
    with RunStore(run.run_dir, command=command, fresh=fresh) as store:
        invocation = _begin(store, run, command, workers, on_bad_input, max_failure_rate)
        if profile:
            store.clear_profiles()
        if retry_failed:
            for (step, shard), rec in store.records().items():
                if rec.stats.failed:
                    store.invalidate(step, shard)
        execution, usage = _execute_session(
            store,
            run,
            ExecOptions(
                run.shard_rows, workers, on_bad_input, address=run.address, profile=profile
            ),
            progress,
            t0,
        )
        store.remove_stale_shards(
            execution.n_shards, [INPUT_STEP, *(s.dirname for s in run.plan.steps)]
        )
        computed = any(
            isinstance(e, journal.ShardCommitted) and e.session == store.session and e.step > 0
            for e in store.events()
        )
        with _disk_full_explained():
            out_rows = _write_output(store, execution, run, invocation, computed)
        report = build_report(
            store,
            run.plan,
            execution,
            input=run.input,
            output=run.output,
            output_rows=out_rows,
            seconds=time.perf_counter() - t0,
            llm=usage,
            max_failure_rate=max_failure_rate,
            estimate=run.estimate.to_dict() if run.estimate is not None else None,
        )
        store.write_json("report.json", report.to_dict())
        store.write_text("report.md", report.to_markdown())
        if profile:
            store.write_text("profile.md", profile_markdown(report, store))
        store.write_json("manifest.json", manifest(store, run.plan, execution.n_shards))
        store.append(
            journal.RunFinished(store.session, status=report.status, seconds=report.seconds)
        )
    return report


def _prepare(
    spec: PipelineSpec,
    input: str | Path,
    output: str | Path,
    run_dir: str | Path | None,
    shard_rows: int | None,
    executor: str,
    limit: int | None = None,
    export_format: str | None = None,
    workers: int = 0,
    fresh: bool = False,
) -> _Run:
    """Every check that can fail before anything is written: output and input paths, the
    executor, the input's schema against the pipeline (compile), the serving section."""
    input_url, output_url = os.fspath(input), os.fspath(output)  # a trailing / is meaningful
    if export_format is None:
        check_output(output_url)
    elif export_format not in EXPORT_FORMATS:
        raise ConfigError(
            f"--format {export_format!r}: expected one of {', '.join(EXPORT_FORMATS)}"
        )
    executors.get(executor)
    source = open_input(input_url)
    run_path = Path(run_dir) if run_dir else Path("runs") / spec.name
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be at least 1, not {limit}")
        source = HeadSource(source, limit)
        run_path = run_path.with_name(f"{run_path.name}{LIMIT_SUFFIX}{limit}")
    check_outputs_spare_input(source, input_url, output_url, run_path)
    small_input_shards = _small_input_shards(run_path, workers, fresh)
    needs_llm = any(registry.get(s.op).requires.llm for s in spec.steps if s.op in registry)
    rows = int(
        shard_rows
        or spec.settings.get("shard_rows")
        or default_shard_rows(source.estimate_rows(), needs_llm, small_input_shards)
    )
    if rows < 1:
        raise ConfigError(f"shard_rows must be >= 1, not {rows}")
    ingest_fp = fingerprint("ingest", rows)  # each shard adds its content (see Executor.ingest)
    plan = compile_pipeline(
        spec,
        input_schema=schema_of(source.schema()),
        base_fingerprint=ingest_fp,
        reach_serving=True,
    )
    run = _Run(spec, plan, source, input_url, output_url, run_path, rows, ingest_fp, executor)
    run.export_format = export_format
    run.small_input_shards = small_input_shards
    if plan.needs_llm:
        from prepflow.engine.estimate import estimate
        from prepflow.serving.config import ServingConfig

        run.serving = serving = ServingConfig.model_validate(spec.serving or {})
        sample = next(source.iter_batches(ESTIMATE_SAMPLE_ROWS)).to_pylist()
        run.estimate = estimate(plan, source.estimate_rows(), sample, serving)
    return run


def _begin(
    store: RunStore,
    run: _Run,
    command: str,
    workers: int,
    on_bad_input: str,
    max_failure_rate: float,
) -> dict[str, Any]:
    """Record what runs and how: pipeline.yaml, run.json (what ``retry`` repeats), and the
    journal's start event. Returns the invocation."""
    _record_pipeline(store, run.plan)
    previous = store.read_json("run.json") or {}
    invocation = {
        "input": run.input,
        "output": run.output,
        "shard_rows": run.shard_rows,
        "small_input_shards": run.small_input_shards,
        "workers": workers,
        "on_bad_input": on_bad_input,
        "max_failure_rate": max_failure_rate,
        "executor": run.executor,
        "address": run.address,
        "prepflow": __version__,
        "output_written": previous.get("output_written"),
    }
    store.write_json("run.json", invocation)
    remove_stale_temps(run.output)
    if run.serving is not None and LIMIT_SUFFIX not in run.run_dir.name:
        _reuse_trial_answers(store, run.run_dir)
    store.append(
        journal.RunStarted(
            store.session,
            pipeline=run.spec.name,
            command=command,
            executor=run.executor,
            input=run.input,
            output=run.output,
            pid=os.getpid(),
            steps=[
                {"index": s.index, "name": s.name, "op": s.op.name, "fingerprint": s.fingerprint}
                for s in run.plan.steps
            ],
        )
    )
    return invocation


def _execute_session(
    store: RunStore, run: _Run, options: ExecOptions, progress: bool | None, t0: float
) -> tuple[Execution, dict[str, Any]]:
    """Run the executor with live progress; journal the LLM usage and how the session ended
    (an interruption raises :class:`RunInterrupted` after that)."""
    serving = None
    if run.serving is not None:
        from prepflow.serving import LazyServing

        serving = LazyServing(
            run.serving,
            cache_path=store.cache_path,
            log_dir=store.log_dir,
            embeddings=any(s.op.requires.embedding for s in run.plan.steps),
            **run.budget,
        )
    bar = RunProgress(
        ["input", *(f"{s.index}. {s.name}" for s in run.plan.steps)],
        mode=_progress_mode(progress),
        estimated_rows=run.source.estimate_rows(),
        serving=serving,
    )
    store.subscribe(bar.on_event)
    if serving is not None:
        serving.on_status = bar.message
    seed = int(run.spec.settings.get("seed", 0))
    resources = RunResources(run.spec.settings.get("sandbox"))

    def context(step: CompiledStep) -> EngineContext:
        preferred = getattr(step.op, "preferred_embedded_model", None)
        return EngineContext(
            scratch=store.scratch_path(step.dirname),
            seed=seed,
            serving=serving.for_model(preferred) if serving is not None else None,
            resources=resources,
        )

    ex = executors.get(run.executor)(run.plan, run.source, store, options, run.ingest_fp, context)
    usage: dict[str, Any] = {}
    caught: list[int] = []
    status = "error"
    try:
        with _disk_full_explained():
            execution = asyncio.run(_execute(ex, serving, usage, caught))
        status = "ok"
    except asyncio.CancelledError:
        if not caught:
            raise
        status = "interrupted"
        raise RunInterrupted(caught[0], run.run_dir) from None
    except BudgetExceeded as e:
        status = "budget"
        raise BudgetExceeded(
            f"{e}: the run stopped; finished shards and answers are kept in {run.run_dir}; "
            "run the same command with a larger budget to resume"
        ) from None
    finally:
        resources.close()
        bar.close()
        if usage:
            store.append(journal.LLMUsage(store.session, usage=usage))
        if status != "ok":
            seconds = time.perf_counter() - t0
            store.append(journal.RunFinished(store.session, status=status, seconds=seconds))
    return execution, usage


async def _execute(
    ex: Any, serving: LazyServing | None, usage: dict[str, Any], caught: list[int]
) -> Execution:
    """Prepare, execute and finish the executor; close the serving (if it was ever opened) and
    keep its usage. SIGINT and SIGTERM cancel the run (``caught`` gets the signal): in-flight
    requests are cancelled, finished shards and cached answers stay; a second signal ends the
    process at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    signals = (signal.SIGINT, signal.SIGTERM) if _main_thread() else ()

    def stop(signum: int) -> None:
        caught.append(signum)
        for sig in signals:
            loop.remove_signal_handler(sig)  # the next signal acts at once
        if task is not None:
            task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, stop, sig)
    ex.prepare()
    try:
        await ex.execute()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        execution = ex.finish()
        if serving is not None:
            for client in serving.clients:
                add_usage(usage, client.stats.to_dict())
            await serving.aclose()
        add_usage(usage, execution.usage)
    return execution


def add_usage(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Add serving usage counters (``ServingStats.to_dict``) into ``total``: numbers add, and so
    do the counts of the nested mappings (errors, failures by type)."""
    for key, value in more.items():
        if isinstance(value, dict):
            into = total.setdefault(key, {})
            for k, v in value.items():
                into[k] = into.get(k, 0) + v
        else:
            total[key] = total.get(key, 0) + value


def _reuse_trial_answers(store: RunStore, run_dir: Path) -> None:
    """A full run starts with the LLM answers its ``--limit`` trials already paid for."""
    trials = [
        trial / CACHE_FILE
        for trial in sorted(run_dir.parent.glob(f"{glob.escape(run_dir.name)}{LIMIT_SUFFIX}*"))
        if is_run_directory(trial) and (trial / CACHE_FILE).is_file()
    ]
    if trials:
        from prepflow.serving.cache import ResponseCache

        cache = ResponseCache(store.cache_path)
        try:
            for path in trials:
                cache.absorb(path)
        finally:
            cache.close()


def _record_pipeline(store: RunStore, plan: Plan) -> None:
    """pipeline.yaml: the resolved pipeline with its step fingerprints, credentials redacted,
    and ``.py`` imports made absolute (``retry`` loads this copy, which must find the same files
    as the YAML they were relative to)."""
    spec = plan.spec
    base = spec.source.resolve().parent if spec.source is not None else None
    serving = spec.serving
    if serving:  # a base_url's credentials never reach the run directory
        from prepflow.serving.config import redacted_serving

        serving = redacted_serving(serving)
    shown = dataclasses.replace(
        spec,
        serving=serving,
        imports=[
            str(base / i) if base is not None and i.endswith(".py") else i for i in spec.imports
        ],
    )
    store.write_text(
        "pipeline.yaml",
        f"# prepflow {__version__}; step fingerprints: "
        + ", ".join(f"{s.name}={s.fingerprint}" for s in plan.steps)
        + "\n"
        + shown.to_yaml(),
    )


def _write_output(
    store: RunStore, execution: Execution, run: _Run, invocation: dict[str, Any], computed: bool
) -> int:
    """Write the final dataset, unless nothing was computed this session and this exact result
    is already there (a re-run does no work; a retry changes rows but not fingerprints)."""
    prev = invocation.get("output_written") or {}
    output, final_fp = run.output, run.plan.steps[-1].fingerprint
    out_path = Path(output) if "://" not in output else None
    if (
        not computed
        and out_path is not None
        and prev.get("fingerprint") == final_fp
        and prev.get("path") == output
        and prev.get("shards") == execution.n_shards
        and out_path.exists()
        and out_path.stat().st_size == prev.get("size")
        and out_path.stat().st_mtime == prev.get("mtime")
    ):
        return int(prev["rows"])
    if run.export_format is None:
        rows = write_output(execution.final_shards, output)
    else:
        rows = _export_output(execution, run, prev)
    written = {
        "path": output,
        "fingerprint": final_fp,
        "shards": execution.n_shards,
        "rows": rows,
        "format": run.export_format,
    }
    if out_path is not None:
        written |= {"size": out_path.stat().st_size, "mtime": out_path.stat().st_mtime}
    store.write_json("run.json", {**invocation, "output_written": written})
    return rows


def _export_output(execution: Execution, run: _Run, prev: dict[str, Any]) -> int:
    """The output in a fine-tuning format. An output this run wrote before (run.json says so)
    is replaced; anything else at that path is refused by the export, never overwritten."""
    path = Path(run.output)
    if prev.get("path") == run.output and prev.get("format") == run.export_format:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    tables = ((p.name, read_shard(p)) for p in execution.final_shards)
    return export(tables, str(run.export_format), path, name=run.spec.name).rows


def _progress_mode(progress: bool | None) -> str:
    """``tty`` (live) on a terminal, plain ``lines`` elsewhere; ``off`` when asked."""
    if progress is None:
        return "tty" if sys.stderr.isatty() else "lines"
    return "tty" if progress else "off"


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _disk_full_explained() -> Iterator[None]:
    try:
        yield
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        where = f" while writing {e.filename}" if e.filename else ""
        raise DiskFull(
            f"no space left on the device{where}: free some space and run the same command "
            "again; finished shards are kept and the run resumes"
        ) from None


def retry_run(run_dir: str | Path, **options: Any) -> RunReport:
    """Re-run a finished run's failed rows: reads how the run was invoked from ``run.json``.
    ``options``: ``workers``, ``progress``, and serving overrides ``serving`` (a mapping)."""
    path = Path(run_dir)
    inv = read_invocation(path)
    spec = load_yaml(path / "pipeline.yaml")
    if options.get("serving") is not None:
        spec.serving = options["serving"]
    return run_pipeline(
        spec,
        input=inv["input"],
        output=inv["output"],
        run_dir=path,
        shard_rows=inv["shard_rows"],
        workers=options.get("workers", inv["workers"]),
        on_bad_input=inv["on_bad_input"],
        max_failure_rate=inv["max_failure_rate"],
        progress=options.get("progress"),
        executor=inv.get("executor", "local"),
        address=options.get("address", inv.get("address")),
        retry_failed=True,
    )


def failed_units(run_dir: str | Path) -> int:
    """How many (step, shard) units of a run recorded failed rows (0: nothing to retry)."""
    read_invocation(Path(run_dir))
    return sum(1 for rec in read_records(Path(run_dir)).values() if rec.stats.failed)
