"""What a run will ask the model, before it asks: requests, tokens, cost, time.

Each LLM step estimates its requests and tokens from the rows that may reach it (an upper bound:
earlier filters only remove rows) and from the prompts of a few real input rows. Cost needs
``serving.prices``; time needs a measured speed, taken from a few real requests
(:func:`measure`) when asked. After a run, the report puts this estimate beside what was spent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from prepflow.engine.compiler import Plan
from prepflow.serving import LazyServing, client_concurrency
from prepflow.serving.config import ServingConfig


@dataclass
class Measurement:
    """What a few real requests took: seconds each and completion tokens each (averages)."""

    requests: int
    seconds: float
    completion_tokens: float


@dataclass
class Estimate:
    rows: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    prompt_tokens: int = 0
    prompt_tokens_exact: bool = True  # False: some steps counted the template text alone
    completion_tokens: int | None = 0  # None: some LLM step has no bound and none was measured
    cost_usd: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def render(self) -> str:
        if not self.steps:
            return "no LLM steps: nothing is asked of a model"
        lines = [f"LLM work for at most {self.rows:,} input rows (upper bounds):"]
        for s in self.steps:
            lines.append(
                f"  {s['index']:>2}. {s['name']:<20} {s['rows']:>8,} rows {s['requests']:>9,} requests  "
                f"{_tokens(s['prompt_tokens'], s['prompt_exact'])} prompt tokens  "
                f"{_tokens(s['completion_tokens'], True)} completion tokens"
            )
        total = (
            f"  total: {self.requests:,} requests, "
            f"{_tokens(self.prompt_tokens, self.prompt_tokens_exact)} prompt tokens, "
            f"{_tokens(self.completion_tokens, True)} completion tokens"
        )
        lines.append(total)
        lines.append(
            "  cost: "
            + (f"at most ${self.cost_usd:,.4f}" if self.cost_usd is not None else "not priced")
            + " (serving.prices, USD per 1M tokens)"
        )
        lines.append(
            "  time: "
            + (
                f"about {_duration(self.seconds)} at the measured speed"
                if self.seconds is not None
                else "unknown (prepflow plan --measure N sends N real requests to time them)"
            )
        )
        return "\n".join(lines)


def estimate(
    plan: Plan,
    rows: int,
    sample: list[dict[str, Any]],
    serving: ServingConfig | None,
    measured: Measurement | None = None,
) -> Estimate:
    """The plan's LLM work for ``rows`` input rows (``sample``: a few of them as dicts)."""
    out = Estimate(rows)
    reaching = rows  # the most rows that can reach the step
    for step in plan.steps:
        step_rows, reaching = reaching, step.op.max_rows_out(reaching)
        if not step.op.requires.llm:
            continue
        e = step.op.estimate(step_rows, sample)
        if "requests" not in e:  # e.g. embeddings, batched by the client: not estimated
            continue
        prompt = e.get("prompt_tokens", e.get("prompt_tokens_min", 0))
        completion = e.get("completion_tokens_max")
        default_max = serving.generation.get("max_tokens") if serving is not None else None
        if completion is None and default_max:
            completion = e["requests"] * int(default_max)
        if completion is None and measured is not None:
            completion = round(e["requests"] * measured.completion_tokens)
        out.steps.append(
            {
                "index": step.index,
                "name": step.name,
                "rows": step_rows,
                "requests": e["requests"],
                "prompt_tokens": prompt,
                "prompt_exact": "prompt_tokens" in e,
                "completion_tokens": completion,
            }
        )
        out.requests += e["requests"]
        out.prompt_tokens += prompt
        out.prompt_tokens_exact &= "prompt_tokens" in e
        out.completion_tokens = (
            None if completion is None or out.completion_tokens is None
            else out.completion_tokens + completion
        )  # fmt: skip
    if serving is not None and serving.prices and out.completion_tokens is not None:
        p = serving.prices
        out.cost_usd = (
            out.prompt_tokens * p.get("input_per_1m", 0)
            + out.completion_tokens * p.get("output_per_1m", 0)
        ) / 1e6
    if measured is not None and serving is not None and out.requests:
        slots = client_concurrency(serving)
        out.seconds = out.requests * measured.seconds / slots
    return out


def measure(
    plan: Plan, sample: list[dict[str, Any]], serving: ServingConfig, n: int
) -> Measurement | None:
    """Time ``n`` real requests: the prompts of the first LLM step for the first sample rows
    (nothing is cached, so they are really answered). None when no prompt renders."""
    step = next((s for s in plan.steps if s.op.requires.llm), None)
    if step is None:
        return None
    prompts = []
    for row in sample:
        try:
            prompts.append(step.op.prompt(row))
        except Exception:
            continue
        if len(prompts) == n:
            break
    if not prompts:
        return None
    return asyncio.run(_timed(serving, prompts, step.op))


async def _timed(serving: ServingConfig, prompts: list[Any], op: Any) -> Measurement:
    root = LazyServing(serving)
    client = root.for_model(getattr(op, "preferred_embedded_model", None))  # as the run would
    try:
        await client.open()  # a local server starts here, not inside the timing
        seconds, tokens = 0.0, 0
        for messages in prompts:  # one at a time: the latency of one request
            t0 = time.perf_counter()
            response = await client.chat(messages, **op.params.generation)  # timed, not parsed
            seconds += time.perf_counter() - t0
            tokens += response.completion_tokens
        return Measurement(len(prompts), seconds / len(prompts), tokens / len(prompts))
    finally:
        await root.aclose()


def _tokens(n: int | None, exact: bool) -> str:
    if n is None:
        return "?"
    return f"{n:,}" if exact else f">{n:,}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
