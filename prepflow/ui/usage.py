"""LLM usage per step, summed from the step's ``llm_calls`` side records (a few number columns
per shard, each file summed once while it is unchanged), priced with the pipeline's prices.

These are the calls behind the rows the run holds now: retries of a resumed run that were later
replaced are not counted here; the journal's session totals count every request sent."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from prepflow.core.operator import LLM_CALLS
from prepflow.data.runstore import shard_file
from prepflow.ui import files

_NUMBERS = ("calls", "requests", "cache_hits", "prompt_tokens", "completion_tokens",
            "paid_prompt_tokens", "paid_completion_tokens")  # fmt: skip


def step_usage(
    run_dir: Path, step_dir: str, n_shards: int, prices: dict[str, float] | None
) -> dict[str, Any] | None:
    """{calls, requests, cache_hits, prompt_tokens, completion_tokens, cost_usd, errors} of a
    step's LLM calls (None: the step made none)."""
    if not (run_dir / LLM_CALLS / step_dir).is_dir():
        return None
    total: dict[str, Any] = dict.fromkeys(_NUMBERS, 0)
    errors: dict[str, int] = {}
    for k in range(n_shards):
        path = shard_file(run_dir, LLM_CALLS, step_dir, k)
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        sums, kinds = _file_sums(str(path), st.st_mtime_ns, st.st_size)
        for key, value in sums:
            total[key] += value
        for kind, n in kinds:
            errors[kind] = errors.get(kind, 0) + n
    total["errors"] = errors
    total["cost_usd"] = (
        (
            total["paid_prompt_tokens"] * prices.get("input_per_1m", 0.0)
            + total["paid_completion_tokens"] * prices.get("output_per_1m", 0.0)
        )
        / 1e6
        if prices
        else None
    )
    return total


@functools.lru_cache(maxsize=65536)
def _file_sums(
    path: str, mtime_ns: int, size: int
) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
    """One file's sums (keyed by its path, modification time and size, so a rewritten file is
    read again)."""
    table = files.columns(
        Path(path), ["cached", "attempts", "prompt_tokens", "completion_tokens", "error"]
    )
    assert table is not None
    paid = pc.invert(table["cached"])

    def total(column: str, where: Any = None) -> int:
        values = table[column] if where is None else table[column].filter(where)
        return int(pc.sum(values).as_py() or 0)

    sums = {
        "calls": table.num_rows,
        "requests": total("attempts"),
        "cache_hits": total("cached"),
        "prompt_tokens": total("prompt_tokens"),
        "completion_tokens": total("completion_tokens"),
        "paid_prompt_tokens": total("prompt_tokens", paid),
        "paid_completion_tokens": total("completion_tokens", paid),
    }
    kinds: dict[str, int] = {}
    for error in table["error"].drop_null().to_pylist():
        kind = error.split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return tuple(sums.items()), tuple(kinds.items())
