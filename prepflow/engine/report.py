"""The run report: what happened to every row, per step, as JSON and Markdown.

Built from the journal records of the steps' current fingerprints, so a resumed run reports the
dataset it produced, not the sum of its sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prepflow.core.operator import StepStats
from prepflow.data.runstore import RunStore


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
            if s["drop_reasons"] or s["errors"]:
                lines += ["", f"## {s['index']}. {s['name']}"]
                lines += [
                    f"- dropped ({n:,}): {r}"
                    for r, n in sorted(s["drop_reasons"].items(), key=lambda kv: -kv[1])
                ]
                lines += [
                    f"- failed ({n:,}): {e}"
                    for e, n in sorted(s["errors"].items(), key=lambda kv: -kv[1])
                ]
        if self.llm:
            lines += ["", "## LLM", *[f"- {k}: {v}" for k, v in self.llm.items()]]
        if self.problems:
            lines += ["", "## Problems", *[f"- {p}" for p in self.problems]]
        return "\n".join(lines) + "\n"


def step_summaries(store: RunStore, plan_steps: list[Any], n_shards: int) -> list[dict[str, Any]]:
    """Per-step totals over the current fingerprint's records of shards 0..n-1."""
    records = store.records()
    out = []
    for s in plan_steps:
        total = StepStats()
        for k in range(n_shards):
            rec = records.get((s.index, k))
            if rec is not None and rec.fingerprint == s.fingerprint:
                total.add(StepStats.from_dict(rec.stats))
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


def input_rows(store: RunStore, n_shards: int) -> int:
    records = store.records()
    return sum(records[(0, k)].stats["rows_out"] for k in range(n_shards) if (0, k) in records)


__all__ = ["RunReport", "input_rows", "step_summaries"]
