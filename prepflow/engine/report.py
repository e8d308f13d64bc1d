"""The run report: what happened to every row, per step, as JSON and Markdown.

Built from the journal records of the steps' current fingerprints, so a resumed run reports the
dataset it produced, not the sum of its sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prepflow.core.operator import StepStats
from prepflow.data.runstore import RunStore, ShardRecord
from prepflow.engine.compiler import CompiledStep, Plan
from prepflow.engine.drops import drop_groups, failure_groups
from prepflow.engine.executors.base import Execution


@dataclass
class RunReport:
    pipeline: str
    run_dir: str
    input: str
    output: str
    status: str  # "ok" | "failed-threshold"
    seconds: float
    input_rows: int
    quarantined: int
    output_rows: int
    steps: list[dict[str, Any]]
    shards: int
    computed_shards: int  # (step, shard) units computed in this session
    resumed_shards: int
    llm: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: per step index (as a string): {"dropped": [groups], "failed": [groups]} (engine.drops)
    details: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    #: the command that re-runs the failed rows, when some failed
    retry_command: str | None = None
    #: what the plan estimated of the LLM work (prepflow.engine.estimate), beside ``llm``
    estimate: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def to_markdown(self) -> str:
        lines = [
            f"# Run report: {self.pipeline}",
            "",
            f"- status: **{self.status}**",
            f"- input: `{self.input}` ({self.input_rows:,} rows"
            + (f", {self.quarantined:,} malformed records quarantined" if self.quarantined else "")
            + ")",
            f"- output: `{self.output}` ({self.output_rows:,} rows)",
            f"- time: {self.seconds:.2f} s; shards: {self.shards}; (step, shard) units computed "
            f"{self.computed_shards}, resumed {self.resumed_shards}",
            "",
        ]
        lines += [
            "| # | step | op | rows in | kept | dropped | failed | rows out | seconds |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.steps:
            lines.append(
                f"| {s['index']} | {s['name']} | {s['op']} | {s['rows_in']:,} | {s['kept']:,} | "
                f"{s['dropped']:,} | {s['failed']:,} | {s['rows_out']:,} | {s['seconds']:.2f} |"
            )
        for s in self.steps:
            detail = self.details.get(str(s["index"]))
            if detail:
                lines += _step_details(s, detail)
        if self.retry_command:
            lines += ["", f"Re-run only the failed rows: `{self.retry_command}`"]
        if self.llm or self.estimate:
            lines += ["", "## LLM", *_llm_lines(self.llm, self.estimate)]
        if self.problems:
            lines += ["", "## Problems", *[f"- {p}" for p in self.problems]]
        return "\n".join(lines) + "\n"


def _step_details(step: dict[str, Any], detail: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["", f"## {step['index']}. {step['name']} ({step['op']})"]
    for what, groups in (
        ("dropped", detail.get("dropped", [])),
        ("failed", detail.get("failed", [])),
    ):
        if not groups:
            continue
        total = step["dropped"] if what == "dropped" else step["failed"]
        lines += ["", f"{total:,} of {step['rows_in']:,} rows {what}:", ""]
        for g in groups:
            values = g.get("values")
            spread = (
                f"; values {_num(values['min'])} to {_num(values['max'])}, "
                f"median {_num(values['median'])}"
                if values
                else ""
            )
            lines.append(f"- **{_md(g['key'])}**: {g['count']:,} rows{spread}")
            if values and len(values["histogram"]) > 1:
                lines += _histogram(values["histogram"])
            for ex in g["examples"]:
                shown = [
                    f"`{_md(str(v))}`" for k, v in ex.items() if k not in ("_id", "reason", "error")
                ]
                why = ex.get("reason") or ex.get("error") or ""
                lines.append(
                    f"  - _id {ex['_id']}: {' '.join(shown)}" + (f" ({_md(why)})" if why else "")
                )
    return lines


def _llm_lines(llm: dict[str, Any], estimate: dict[str, Any] | None) -> list[str]:
    """What was asked of the model this session, beside the plan's estimate (upper bounds)."""
    lines = ["", "| | this session | estimated (at most) |", "|---|---:|---:|"]
    est = estimate or {}

    def cell(value: Any, money: bool = False) -> str:
        if value is None:
            return "?"
        return f"${value:,.4f}" if money else f"{value:,}"

    asked = llm or {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}  # all resumed
    rows = [
        ("requests", asked.get("requests"), est.get("requests"), False),
        ("prompt tokens", asked.get("prompt_tokens"), est.get("prompt_tokens"), False),
        ("completion tokens", asked.get("completion_tokens"), est.get("completion_tokens"), False),
        ("cost", asked.get("cost_usd"), est.get("cost_usd"), True),
    ]
    for name, actual, estimated, money in rows:
        lines.append(f"| {name} | {cell(actual, money)} | {cell(estimated, money)} |")
    extra = {k: v for k, v in llm.items() if k in ("cache_hits", "retries", "reasks") and v}
    failures = llm.get("failures") or {}
    if extra:
        lines += ["", ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in extra.items())]
    if failures:
        lines.append("failed calls: " + ", ".join(f"{k} {v:,}" for k, v in failures.items()))
    return lines


def _histogram(bins: list[list[float]], width: int = 30) -> list[str]:
    most = max(count for _, _, count in bins) or 1
    rows = ["", "  ```text"]
    for low, high, count in bins:
        label = _num(low) if low == high else f"{_num(low)} to {_num(high)}"
        rows.append(
            f"  {label:>22}  {'#' * max(1 if count else 0, round(width * count / most)):<{width}} {count:,}"
        )
    return [*rows, "  ```"]


def _num(x: float) -> str:
    return f"{x:.4g}"


def _md(text: str) -> str:
    """Text shown in Markdown as itself: table pipes and backticks escaped, one line."""
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")


def step_summaries(
    records: dict[tuple[int, int], ShardRecord], steps: list[CompiledStep], n_shards: int
) -> list[dict[str, Any]]:
    """Per-step totals over the current fingerprint's records of shards 0..n-1."""
    out = []
    for s in steps:
        total = StepStats()
        for k in range(n_shards):
            rec = records.get((s.index, k))
            if rec is not None and rec.fingerprint == s.fingerprint:
                total.add(rec.stats)
        out.append(
            {
                "index": s.index,
                "name": s.name,
                "op": s.op.name,
                "kind": str(s.op.kind),
                "dir": s.dirname,
                "fingerprint": s.fingerprint,
                **total.to_dict(),
            }
        )
    return out


def build_report(
    store: RunStore,
    plan: Plan,
    execution: Execution,
    *,
    input: str,
    output: str,
    output_rows: int,
    seconds: float,
    llm: dict[str, Any],
    max_failure_rate: float,
    estimate: dict[str, Any] | None = None,
) -> RunReport:
    """The report of a finished session, from the journal (the dataset it describes, not the
    sum of the sessions that made it)."""
    records = store.records()
    n = execution.n_shards
    steps = step_summaries(records, plan.steps, n)
    problems = [
        f"step {s['index']} '{s['name']}': {s['failed']:,} of {s['rows_in']:,} rows failed "
        f"(> {max_failure_rate:.0%}); see failures/{s['dir']}/"
        for s in steps
        if s["rows_in"] and s["failed"] / s["rows_in"] > max_failure_rate
    ]
    computed = sum(1 for (step, _), r in records.items() if step > 0 and r.session == store.session)
    details = {
        str(step.index): {
            "dropped": drop_groups(store, step) if summary["dropped"] else [],
            "failed": failure_groups(store, step) if summary["failed"] else [],
        }
        for step, summary in zip(plan.steps, steps, strict=True)
        if summary["dropped"] or summary["failed"]
    }
    return RunReport(
        pipeline=plan.spec.name,
        run_dir=str(store.dir),
        input=input,
        output=output,
        status="failed-threshold" if problems else "ok",
        seconds=round(seconds, 3),
        input_rows=sum(records[(0, k)].stats.rows_out for k in range(n) if (0, k) in records),
        quarantined=execution.quarantined,
        output_rows=output_rows,
        steps=steps,
        shards=n,
        computed_shards=computed,
        resumed_shards=n * len(plan.steps) - computed,
        llm=llm,
        problems=problems,
        details=details,
        retry_command=f"prepflow retry {store.dir}" if any(s["failed"] for s in steps) else None,
        estimate=estimate,
    )


def manifest(store: RunStore, plan: Plan, n_shards: int) -> dict[str, Any]:
    """manifest.json: per step, its status, fingerprint and shards with their counts."""
    records = store.records()
    steps = []
    for s in plan.steps:
        shards = [
            {
                "shard": k,
                "file": str(store.shard_path("steps", s.dirname, k).relative_to(store.dir)),
                **records[(s.index, k)].stats.to_dict(),
            }
            for k in range(n_shards)
            if (s.index, k) in records
        ]
        steps.append(
            {
                "index": s.index,
                "name": s.name,
                "op": s.op.name,
                "version": s.op.version,
                "fingerprint": s.fingerprint,
                "status": "done" if len(shards) == n_shards else "incomplete",
                "shards": shards,
            }
        )
    return {"pipeline": plan.spec.name, "shards": n_shards, "steps": steps}


__all__ = ["RunReport", "build_report", "manifest", "step_summaries"]


#: Functions listed per step in profile.md
TOP_FUNCTIONS = 12


def step_times(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each step's seconds, milliseconds per 1,000 input rows and share of all steps' time."""
    total = sum(s["seconds"] for s in steps) or 1.0
    return [
        {
            "index": s["index"],
            "name": s["name"],
            "op": s["op"],
            "rows_in": s["rows_in"],
            "seconds": s["seconds"],
            "ms_per_1k": 1e6 * s["seconds"] / s["rows_in"] if s["rows_in"] else 0.0,
            "share": s["seconds"] / total,
        }
        for s in steps
    ]


def profile_markdown(report: RunReport, store: RunStore, top: int = TOP_FUNCTIONS) -> str:
    """``profile.md`` of a ``--profile`` session (:mod:`prepflow.engine.profiling`): each
    step's time per 1,000 rows and share of the steps' time, then per step the functions that
    took the most time of their own, merged over its shards."""
    times = step_times(report.steps)
    lines = [
        f"# Profile: {report.pipeline}",
        "",
        f"- run: {report.seconds:.2f} s wall; steps: {sum(t['seconds'] for t in times):.2f} s "
        f"(summed over shards and workers); shards: {report.shards}",
        f"- (step, shard) units profiled: {report.computed_shards}; resumed, so not profiled: "
        f"{report.resumed_shards} (profile every unit with `--fresh`)",
        "- times are taken under cProfile, which slows Python code more than Arrow and numpy "
        "kernels: compare steps with each other, and time the run without `--profile`",
        "- LLM steps are timed, not profiled (their time is waiting for answers; see the "
        "report's LLM line)",
        "",
        "| # | step | op | rows in | seconds | ms / 1,000 rows | share |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {t['index']} | {t['name']} | {t['op']} | {t['rows_in']:,} | {t['seconds']:.3f} | "
        f"{t['ms_per_1k']:.1f} | {t['share']:.0%} |"
        for t in times
    ]
    for t in sorted(times, key=lambda t: -t["seconds"]):
        step = next(s for s in report.steps if s["index"] == t["index"])
        files = store.profile_files(step["dir"])
        if not files:
            continue
        lines += [
            "",
            f"## {t['name']} ({t['op']}): {t['seconds']:.3f} s",
            "",
            f"Over {len(files)} profiled pass(es) (`{store.dir / 'profile' / step['dir']}`; "
            "`python -m pstats FILE` or snakeviz open one):",
            "",
            "```",
            _top_functions([str(f) for f in files], top),
            "```",
        ]
    return "\n".join(lines) + "\n"


def _top_functions(paths: list[str], top: int) -> str:
    """The functions with the most time of their own (any code: Arrow's kernels show as
    ``compute.py(wrapper)``), then those with the most time in total in prepflow's code and
    the user's: the operators' own functions, where a fix would go."""
    import pstats  # only runs with --profile read the profiles

    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(*paths).stats  # type: ignore[attr-defined]
    own = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    code = sorted((kv for kv in stats.items() if _is_source(kv[0][0])), key=lambda kv: -kv[1][3])[
        :top
    ]
    header = f"{'own s':>8} {'total s':>8} {'calls':>9}  function"
    return "\n".join(
        [
            "most time of their own:",
            header,
            *(_function_line(k, v) for k, v in own),
            "",
            "most time in total, in prepflow's code and yours:",
            header,
            *(_function_line(k, v) for k, v in code),
        ]
    )


def _is_source(filename: str) -> bool:
    """prepflow's code and the user's: not built-in, the standard library or another package."""
    if filename.startswith(("<", "~")):
        return False
    return "/prepflow/" in filename or not (
        "site-packages" in filename or "/lib/python" in filename
    )


def _function_line(key: tuple[str, int, str], value: tuple[Any, ...]) -> str:
    filename, line, name = key
    _, calls, own, total, _ = value
    where = name if filename == "~" else f"{'/'.join(filename.split('/')[-2:])}:{line}({name})"
    return f"{own:>8.3f} {total:>8.3f} {calls:>9,}  {where}"
