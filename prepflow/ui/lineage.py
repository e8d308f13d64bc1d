"""One row through a run: found by id or by text, then read at every step from that step's
shard files (kept, dropped, failed, measured, and the LLM calls made for it).

A row keeps its input ``_id`` through every step (rows a step fans out keep their parent's), and
its shard is the input shard it was read into, so a row's lineage reads one shard per step.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.operator import (
    ATTEMPTS,
    ERROR,
    ERROR_TYPE,
    ID,
    LLM_CALLS,
    MEASURED_RULES,
    MEASURES,
    RAW,
    REASON,
)
from prepflow.data import shardfile
from prepflow.data.runstore import INPUT_STEP, shard_file
from prepflow.ui import files
from prepflow.ui.present import display

SEARCH_LIMIT = 20
DIFF_MAX_CHARS = 20_000  # longer values are shown before and after, not diffed word by word
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_SIDE_COLUMNS = (REASON, ERROR_TYPE, ERROR, ATTEMPTS, RAW)


def shard_of(run_dir: Path, row_id: int, shard_rows: int | None, n_shards: int) -> int | None:
    """The input shard holding ``row_id`` (shard k holds ids from k * shard_rows on; checked,
    and every shard's ids are looked at when that fails)."""
    guesses = [row_id // shard_rows] if shard_rows else []
    for k in [*guesses, *(k for k in range(n_shards) if k not in guesses)]:
        if 0 <= k < n_shards and files.rows_with_ids(
            shard_file(run_dir, "steps", INPUT_STEP, k), [row_id], [ID]
        ):
            return k
    return None


def lineage(
    run_dir: Path, steps: list[dict[str, Any]], shard: int, row_id: int
) -> list[dict[str, Any]]:
    """The row at the input and at every step: status (input, kept, dropped, failed, pending,
    not reached), its rows there, what changed from the step before, the reason or error, the
    measured values and the LLM calls."""
    rows = _plain(files.rows_with_ids(shard_file(run_dir, "steps", INPUT_STEP, shard), [row_id]))
    stages = [{"index": 0, "name": "input", "op": "", "dir": INPUT_STEP, "status": "input",
               "rows": [_shown(r) for r in rows]}]  # fmt: skip
    previous = rows
    for step in steps:
        stage: dict[str, Any] = {**step, "rows": [], "changes": [], "calls": [], "measured": []}
        stages.append(stage)
        if not previous:
            stage["status"] = "not reached"
            continue
        path = shard_file(run_dir, "steps", step["dir"], shard)
        if not path.exists():
            stage["status"] = "pending"
            previous = []
            continue
        kept = _plain(files.rows_with_ids(path, [row_id]))
        dropped = files.rows_with_ids(shard_file(run_dir, "dropped", step["dir"], shard), [row_id])
        failed = files.rows_with_ids(shard_file(run_dir, "failures", step["dir"], shard), [row_id])
        stage["status"] = (
            "kept" if kept else "dropped" if dropped else "failed" if failed else "gone"
        )
        stage["rows"] = [_shown(r) for r in kept]
        stage["dropped"] = [{k: r.get(k) for k in _SIDE_COLUMNS if k in r} for r in dropped]
        stage["failed"] = [{k: r.get(k) for k in _SIDE_COLUMNS if k in r} for r in failed]
        if kept and len(previous) == 1:
            stage["changes"] = [changes(previous[0], row) for row in kept]
        stage["calls"] = calls(run_dir, step["dir"], shard, row_id)
        stage["measured"] = measured(run_dir, step["dir"], shard, row_id)
        previous = kept
    return stages


def calls(run_dir: Path, step_dir: str, shard: int, row_id: int) -> list[dict[str, Any]]:
    """The LLM calls made for the row at a step, in order, messages decoded."""
    found = files.rows_with_ids(shard_file(run_dir, LLM_CALLS, step_dir, shard), [row_id])
    for call in found:
        call["messages"] = json.loads(call["messages"])
    return sorted(found, key=lambda c: c["call"])


def measured(run_dir: Path, step_dir: str, shard: int, row_id: int) -> list[dict[str, Any]]:
    """The row's measured values at a threshold filter, rule by rule, and whether each passed."""
    path = shard_file(run_dir, MEASURES, step_dir, shard)
    found = files.rows_with_ids(path, [row_id])
    if not found:
        return []
    rules = json.loads(shardfile.schema(path).metadata[MEASURED_RULES])
    out = []
    for r in rules:
        value = found[0].get(r["column"])
        fails = (
            value is not None
            and value == value
            and (  # NaN never fails
                value < r["threshold"] if r["bound"] == "min" else value > r["threshold"]
            )
        )
        out.append({**r, "value": value, "passed": not fails})
    return out


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What a step did to a row: columns added, removed and changed (strings diffed by word),
    and the names of those left as they were."""
    added = [{"column": c, "value": display(after[c])} for c in after if c not in before]
    removed = [c for c in before if c not in after]
    changed, same = [], []
    for c in before:
        if c not in after:
            continue
        if before[c] == after[c]:
            same.append(c)
            continue
        entry: dict[str, Any] = {"column": c, "before": display(before[c]), "after": display(after[c])}  # fmt: skip
        if isinstance(before[c], str) and isinstance(after[c], str):
            entry["diff"] = word_diff(before[c], after[c])
        changed.append(entry)
    return {"added": added, "removed": removed, "changed": changed, "same": same}


def word_diff(a: str, b: str) -> list[tuple[str, str]] | None:
    """[(same | del | ins, text)] turning ``a`` into ``b`` word by word (None: too long)."""
    if len(a) + len(b) > DIFF_MAX_CHARS:
        return None
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("same", "".join(ta[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(ta[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(tb[j1:j2])))
    return out


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != ID} for r in rows]


def _shown(row: dict[str, Any]) -> dict[str, str]:
    return {k: display(v) for k, v in row.items()}


# ---- search ------------------------------------------------------------------------------------


def search(
    run_dir: Path, step_dirs: list[str], n_shards: int, text: str, limit: int = SEARCH_LIMIT
) -> list[dict[str, Any]]:
    """Rows whose text contains ``text`` (case folded), looked for in ``step_dirs`` in order,
    shard by shard, until ``limit`` distinct rows: [{id, shard, step, column, before, match,
    after}] (the match with some context around it)."""
    found: dict[int, dict[str, Any]] = {}
    for step_dir in step_dirs:
        for k in range(n_shards):
            path = shard_file(run_dir, "steps", step_dir, k)
            schema = files.schema(path)
            if schema is None:
                continue
            texts = [f.name for f in schema if pa.types.is_string(f.type) and f.name[0] != "_"]
            table = files.columns(path, [ID, *texts])
            if table is None or not texts:
                continue
            mask = None
            for c in texts:
                m = pc.fill_null(pc.match_substring(table[c], text, ignore_case=True), False)
                mask = m if mask is None else pc.or_(mask, m)
            for row in table.filter(mask).to_pylist():
                if row[ID] in found:
                    continue
                column = next(
                    (c for c in texts if row[c] and text.lower() in row[c].lower()), texts[0]
                )
                found[row[ID]] = {"id": row[ID], "shard": k, "step": step_dir, "column": column,
                                  **_around(row[column], text)}  # fmt: skip
                if len(found) >= limit:
                    return list(found.values())
    return list(found.values())


def _around(value: str, text: str, context: int = 80) -> dict[str, str]:
    at = max(0, (value or "").lower().find(text.lower()))
    value = value or ""
    start, end = max(0, at - context), min(len(value), at + len(text) + context)
    return {
        "before": ("…" if start else "") + value[start:at],
        "match": value[at : at + len(text)],
        "after": value[at + len(text) : end] + ("…" if end < len(value) else ""),
    }
