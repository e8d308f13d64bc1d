"""Run a pipeline end to end: compile, ingest, execute (resuming), write the output and report."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prepflow import __version__
from prepflow.core.columns import schema_of
from prepflow.core.errors import ConfigError
from prepflow.core.registry import registry
from prepflow.data.readers import open_input
from prepflow.data.runstore import RunStore, shard_file
from prepflow.data.writers import write_output
from prepflow.engine.compiler import Plan, compile_pipeline, fingerprint
from prepflow.engine.executor import ExecOptions, Executor, RunContext, check_quarantine_policy
from prepflow.engine.progress import RunProgress
from prepflow.engine.report import RunReport, input_rows, step_summaries
from prepflow.engine.spec import PipelineSpec, load_yaml

DEFAULT_SHARD_ROWS = 50_000
DEFAULT_LLM_SHARD_ROWS = 64  # LLM rows are slow and costly: resume at a fine grain
#: A small LLM input is cut into this many shards (of at least MIN_LLM_SHARD_ROWS rows): a step
#: that needs its whole input (``row_local`` false) waits for the slowest answer of its shard,
#: and other shards' requests keep the serving busy meanwhile.
SMALL_LLM_INPUT_SHARDS = 16
MIN_LLM_SHARD_ROWS = 8
#: An input smaller than one default shard is cut into this many shards (of at least
#: MIN_AUTO_SHARD_ROWS rows), so that several cores share it. It depends on the input only, not
#: on the machine, so a run resumes with the same shards anywhere.
SMALL_INPUT_SHARDS = 4
MIN_AUTO_SHARD_ROWS = 1_000


def default_shard_rows(estimated_rows: int, needs_llm: bool) -> int:
    """Rows per shard when neither the caller nor the pipeline sets them."""
    if needs_llm:
        spread = -(-estimated_rows // SMALL_LLM_INPUT_SHARDS)
        return min(DEFAULT_LLM_SHARD_ROWS, max(MIN_LLM_SHARD_ROWS, spread))
    spread = -(-estimated_rows // SMALL_INPUT_SHARDS)
    return min(DEFAULT_SHARD_ROWS, max(MIN_AUTO_SHARD_ROWS, spread))


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
) -> RunReport:
    """Run ``spec`` on ``input`` into ``output``; an existing ``run_dir`` is resumed.

    ``retry_failed`` recomputes every (step, shard) that recorded failures (the LLM cache makes
    the rows that succeeded free), and everything downstream of them.
    """
    t0 = time.perf_counter()
    check_quarantine_policy(on_bad_input)
    if overrides:
        spec.apply_overrides(overrides)
    source = open_input(input)
    needs_llm = any(registry.get(s.op).requires.llm for s in spec.steps if s.op in registry)
    rows = int(
        shard_rows
        or spec.settings.get("shard_rows")
        or default_shard_rows(source.estimate_rows(), needs_llm)
    )
    if rows < 1:
        raise ConfigError(f"shard_rows must be >= 1, not {rows}")
    ingest_fp = fingerprint("ingest", source.fingerprint(), rows)
    plan = compile_pipeline(
        spec, input_schema=schema_of(source.schema()), base_fingerprint=ingest_fp
    )

    run_path = Path(run_dir) if run_dir else Path("runs") / spec.name
    if fresh and run_path.exists():
        shutil.rmtree(run_path)
    store = RunStore(run_path)
    store.write_text(
        "pipeline.yaml",
        f"# prepflow {__version__}; step fingerprints: "
        + ", ".join(f"{s.name}={s.fingerprint}" for s in plan.steps)
        + "\n"
        + spec.to_yaml(),
    )
    previous = store.read_json("run.json") or {}
    invocation = {
        "input": str(input),
        "output": str(output),
        "shard_rows": rows,
        "workers": workers,
        "on_bad_input": on_bad_input,
        "max_failure_rate": max_failure_rate,
        "prepflow": __version__,
        "output_written": previous.get("output_written"),
    }
    store.write_json("run.json", invocation)
    if retry_failed:
        _invalidate_failed(store)

    opts = ExecOptions(
        shard_rows=rows,
        workers=workers,
        on_bad_input=on_bad_input,
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    bar = RunProgress(
        ["input", *(f"{s.index}. {s.name}" for s in plan.steps)], enabled=opts.progress
    )
    llm_stats: dict[str, Any] = {}
    try:
        asyncio.run(_execute(plan, source, store, opts, ingest_fp, bar, llm_stats, holder := []))
    finally:
        bar.close()
        store.close()
    executor: Executor = holder[0]
    executor.remove_stale_shards()
    final_fp = plan.steps[-1].fingerprint
    history = [e for e in store.history() if e.get("session") == store.session and "stats" in e]
    out_rows = _write_output(
        store,
        executor,
        Path(output) if "://" not in str(output) else output,
        final_fp,
        invocation,
        computed=bool(history),
    )
    steps = step_summaries(store, plan.steps, executor.n_shards)
    problems = [
        f"step {s['index']} '{s['name']}': {s['failed']:,} of {s['rows_in']:,} rows failed "
        f"(> {max_failure_rate:.0%}); see failures/{s['dir']}/"
        for s in steps
        if s["rows_in"] and s["failed"] / s["rows_in"] > max_failure_rate
    ]
    report = RunReport(
        pipeline=spec.name,
        run_dir=str(run_path),
        input=str(input),
        output=str(output),
        status="failed-threshold" if problems else "ok",
        seconds=round(time.perf_counter() - t0, 3),
        input_rows=input_rows(store, executor.n_shards),
        quarantined=executor.quarantined,
        output_rows=out_rows,
        steps=steps,
        shards=executor.n_shards,
        computed_shards=sum(1 for e in history if e["step"] > 0),
        resumed_shards=executor.n_shards * len(plan.steps)
        - sum(1 for e in history if e["step"] > 0),
        llm=llm_stats,
        problems=problems,
    )
    store.write_json("report.json", report.to_dict())
    store.write_text("report.md", report.to_markdown())
    store.write_json("manifest.json", _manifest(store, plan, executor.n_shards))
    return report


async def _execute(
    plan: Plan,
    source: Any,
    store: RunStore,
    opts: ExecOptions,
    ingest_fp: str,
    bar: RunProgress,
    llm_stats: dict[str, Any],
    holder: list[Executor],
) -> None:
    async with _serving(plan, store, llm_stats) as serving:
        ctx = RunContext(store.dir, serving, plan.spec.settings.get("sandbox") or {})
        executor = Executor(plan, source, store, opts, ingest_fp, ctx, on_commit=bar.update)
        holder.append(executor)
        try:
            await executor.run()
        finally:
            ctx.close()


@contextlib.asynccontextmanager
async def _serving(plan: Plan, store: RunStore, llm_stats: dict[str, Any]) -> AsyncIterator[Any]:
    """Open the pipeline's LLM serving only when a step needs it; record its usage on exit."""
    if not plan.needs_llm:
        yield None
        return
    from prepflow.serving import open_serving
    from prepflow.serving.config import ServingConfig

    config = ServingConfig.model_validate(plan.spec.serving or {})
    async with open_serving(
        config,
        run_dir=store.dir,
        cache_path=store.dir / "llm_cache.sqlite",
        embeddings=any(s.op.requires.embedding for s in plan.steps),
    ) as serving:
        try:
            yield serving
        finally:
            llm_stats.update(serving.stats.to_dict())


def _write_output(
    store: RunStore,
    executor: Executor,
    output: Any,
    final_fp: str,
    invocation: dict[str, Any],
    *,
    computed: bool,
) -> int:
    """Write the final dataset, unless nothing was computed this session and this exact result
    is already there (a re-run does no work; a retry changes rows but not fingerprints)."""
    prev = invocation.get("output_written") or {}
    out_path = Path(output) if isinstance(output, Path) else None
    if (
        not computed
        and out_path is not None
        and prev.get("fingerprint") == final_fp
        and prev.get("path") == str(output)
        and prev.get("shards") == executor.n_shards
        and out_path.exists()
        and out_path.stat().st_size == prev.get("size")
        and out_path.stat().st_mtime == prev.get("mtime")
    ):
        return int(prev["rows"])
    rows = write_output(executor.final_shards(), output)
    written = {
        "path": str(output),
        "fingerprint": final_fp,
        "shards": executor.n_shards,
        "rows": rows,
    }
    if out_path is not None:
        written |= {"size": out_path.stat().st_size, "mtime": out_path.stat().st_mtime}
    store.write_json("run.json", {**invocation, "output_written": written})
    return rows


def _invalidate_failed(store: RunStore) -> None:
    for (step, shard), rec in store.records().items():
        if rec.stats.get("failed"):
            store.invalidate(step, shard)


def _manifest(store: RunStore, plan: Plan, n_shards: int) -> dict[str, Any]:
    records = store.records()
    steps = []
    for s in plan.steps:
        shards = [
            {
                "shard": k,
                "file": str(shard_file(Path(), "steps", s.dirname, k)),
                **records[(s.index, k)].stats,
            }
            for k in range(n_shards)
            if (s.index, k) in records
        ]
        status = "done" if len(shards) == n_shards else "incomplete"
        steps.append(
            {
                "index": s.index,
                "name": s.name,
                "op": s.op.name,
                "version": s.op.version,
                "fingerprint": s.fingerprint,
                "status": status,
                "shards": shards,
            }
        )
    return {"pipeline": plan.spec.name, "shards": n_shards, "steps": steps}


def retry_run(run_dir: str | Path, **overrides: Any) -> RunReport:
    """Re-run a finished run's failed rows: reads how the run was invoked from ``run.json``."""
    store = RunStore(run_dir)
    inv = store.read_json("run.json")
    if not inv or not (store.dir / "pipeline.yaml").exists():
        raise ConfigError(f"{run_dir}: not a prepflow run directory (no run.json / pipeline.yaml)")
    spec = load_yaml(store.dir / "pipeline.yaml")
    return run_pipeline(
        spec,
        input=inv["input"],
        output=inv["output"],
        run_dir=run_dir,
        shard_rows=inv["shard_rows"],
        workers=overrides.get("workers", inv["workers"]),
        on_bad_input=inv["on_bad_input"],
        max_failure_rate=inv["max_failure_rate"],
        progress=overrides.get("progress"),
        retry_failed=True,
    )
