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
