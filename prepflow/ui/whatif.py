"""What another threshold would keep: one rule of one filter step, from recorded values, no rerun.

A rule is a drop-reason group with a measured threshold (``min_doc_words: word_count < 50``, see
:mod:`prepflow.core.reasons`). Its values come from, best first:

1. the step's ``measures`` side record (threshold filters record every row's value for every
   rule): exact in both directions, the step's other rules applied as they are;
2. a column of the step's rows named like the measure (a judge's ``score``, ``lang_score``), read
   from its kept rows and from the rows this rule dropped: exact for this rule; the rows it
   dropped are taken to pass the step's other rules;
3. the values the reasons quote (four significant digits) of the rows this rule dropped: the kept
   rows' values are unknown, so only a looser threshold can be told.

Only the rows whose fate this rule decides are held: sorted values with their ids, so that a
count at any threshold is a binary search.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prepflow.core.operator import ID, MEASURED_RULES, MEASURES, REASON
from prepflow.data import shardfile
from prepflow.data.runstore import shard_file
from prepflow.ui import files

_KEY = re.compile(
    r"^(?:(?P<rule>[^:;]+?): )?(?P<measure>[\w.\[\]]+) (?P<op><=|>=|<|>) (?P<threshold>\S+)$"
)
EXAMPLES = 3
_BINS = 40


@dataclass(frozen=True)
class Rule:
    """A measured threshold rule, from its drop-reason key: rows with ``measure op threshold``
    are dropped (``op`` is one of < <= > >=)."""

    key: str
    rule: str  # the parameter that sets the threshold ('' when the reason names none)
    measure: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, key: str) -> Rule | None:
        m = _KEY.match(key)
        if m is None:
            return None
        try:
            threshold = float(m["threshold"])
        except ValueError:
            return None
        if not math.isfinite(threshold):
            return None
        return cls(key, m["rule"] or "", m["measure"], m["op"], threshold)

    @property
    def keeps_high(self) -> bool:
        """A minimum (drops low values) rather than a maximum."""
        return self.op in ("<", "<=")

    @property
    def reason_prefix(self) -> str:
        """How the reasons of this rule's drops begin."""
        return f"{self.rule}: {self.measure}=" if self.rule else f"{self.measure}="

    def boundary(self, values: np.ndarray, t: float) -> int:
        """In sorted ``values``: the index where kept values start (a minimum) or end."""
        side = "left" if self.op in ("<", ">=") else "right"
        return int(np.searchsorted(values, t, side=side))


@dataclass
class Curve:
    """The rows whose fate one rule decides, by value (see the module docstring)."""

    rule: Rule
    values: np.ndarray  # sorted, finite
    ids: np.ndarray
    shards: np.ndarray
    base: int  # rows kept whatever the threshold (no value: NaN never fails)
    source: str  # measures | column | reasons
    exact: bool
    stricter: bool  # whether a stricter threshold can be told (the kept rows' values are known)

    @property
    def integral(self) -> bool:
        return (
            bool(np.all(self.values == np.round(self.values)))
            and float(self.rule.threshold).is_integer()
        )

    def passing(self, t: float) -> tuple[int, int]:
        """The index range [start, stop) of ``values`` kept at threshold ``t``."""
        b = self.rule.boundary(self.values, t)
        return (b, len(self.values)) if self.rule.keeps_high else (0, b)

    def kept(self, t: float) -> int:
        start, stop = self.passing(t)
        return self.base + stop - start

    def allowed(self, t: float) -> bool:
        """Whether ``t`` can be told: any threshold, or only looser ones."""
        looser = t <= self.rule.threshold if self.rule.keeps_high else t >= self.rule.threshold
        return self.stricter or looser

    def scale(self) -> dict[str, Any]:
        """The slider's range and step, and a histogram of the values over it."""
        t = self.rule.threshold
        if len(self.values):
            lo, hi = (float(x) for x in np.quantile(self.values, [0.005, 0.995]))
        else:
            lo = hi = t
        lo, hi = min(lo, t), max(hi, t)
        if not self.stricter and len(self.values):  # looser only: up to the farthest drop
            lo, hi = (
                (float(self.values[0]), t) if self.rule.keeps_high else (t, float(self.values[-1]))
            )
        if self.integral:
            lo, hi, step = math.floor(lo), math.ceil(hi), 1.0
        else:
            step = _nice((hi - lo) / 200) if hi > lo else 0.01
        if hi <= lo:
            hi = lo + (step if self.integral else max(abs(lo) * 0.1, step))
        inside = self.values[(self.values >= lo) & (self.values <= hi)]
        bins = min(_BINS, int(hi - lo) + 1) if self.integral else _BINS
        counts, edges = np.histogram(inside, bins=bins, range=(lo, hi))
        return {
            "min": lo,
            "max": hi,
            "step": step,
            "integral": self.integral,
            "histogram": [
                [float(edges[i]), float(edges[i + 1]), int(c)] for i, c in enumerate(counts)
            ],
            "outside": int(len(self.values) - len(inside)),
        }

    def at(self, t: float) -> dict[str, Any]:
        """Counts at threshold ``t`` beside the current one, and the example rows closest to
        the line on each side (indices into ``values``)."""
        now = self.kept(self.rule.threshold)
        kept = self.kept(t)
        start, stop = self.passing(t)
        if self.rule.keeps_high:
            kept_side = list(range(start, min(stop, start + EXAMPLES)))
            dropped_side = list(range(start - 1, max(-1, start - 1 - EXAMPLES), -1))
        else:
            kept_side = list(range(stop - 1, max(-1, stop - 1 - EXAMPLES), -1))
            dropped_side = list(range(stop, min(len(self.values), stop + EXAMPLES)))
        return {
            "threshold": t,
            "kept": kept,
            "kept_now": now,
            "newly_kept": max(0, kept - now),
            "newly_dropped": max(0, now - kept),
            "dropped_by_rule": len(self.values) - (stop - start),
            "kept_examples": kept_side,
            "dropped_examples": dropped_side,
        }


def curve(
    run_dir: Path,
    step_dir: str,
    n_shards: int,
    rule: Rule,
    *,
    kept: int,
    other_groups: bool,
    version: Hashable = None,
) -> Curve | None:
    """The best values there are for ``rule`` of the step in ``step_dir`` (None: none at all);
    ``kept``: the rows the step kept, ``other_groups``: whether it dropped rows for other
    reasons too; ``version``: changes when the step's shards do (the step's measures are read
    once per version for all its rules)."""
    return (
        _from_measures(_measured(run_dir, step_dir, n_shards, version), rule)
        or _from_column(run_dir, step_dir, n_shards, rule, exact=not other_groups)
        or _from_reasons(run_dir, step_dir, n_shards, rule, kept)
    )


@dataclass(frozen=True)
class _Measured:
    """A step's measures: its rules, each rule's values, and per row how many rules it fails."""

    rules: list[dict[str, Any]]
    values: list[np.ndarray]  # per rule
    fails: list[np.ndarray]  # per rule: the rows it fails
    failed_rules: np.ndarray  # per row: how many rules it fails
    ids: np.ndarray
    shards: np.ndarray


@functools.lru_cache(maxsize=2)
def _measured(run_dir: Path, step_dir: str, n: int, version: Hashable) -> _Measured | None:
    paths = [(k, shard_file(run_dir, MEASURES, step_dir, k)) for k in range(n)]
    paths = [(k, p) for k, p in paths if p.exists()]
    if not paths:
        return None
    rules = json.loads(shardfile.schema(paths[0][1]).metadata[MEASURED_RULES])
    needed = [ID, *dict.fromkeys(r["column"] for r in rules)]
    tables = [(k, t) for k, p in paths if (t := files.columns(p, needed)) is not None]
    table = pa.concat_tables([t for _, t in tables])
    columns = {c: _floats(table[c]) for c in needed[1:]}
    values = [columns[r["column"]] for r in rules]
    fails = [
        ~_keeps(v, "<" if r["bound"] == "min" else ">", float(r["threshold"]))
        for r, v in zip(rules, values, strict=True)
    ]
    return _Measured(
        rules,
        values,
        fails,
        np.sum(fails, axis=0) if fails else np.zeros(table.num_rows, int),
        _ints(table[ID]),
        np.concatenate([np.full(t.num_rows, k) for k, t in tables]),
    )


def _from_measures(measured: _Measured | None, rule: Rule) -> Curve | None:
    if measured is None:
        return None
    mine = [
        i
        for i, r in enumerate(measured.rules)
        if r["param"] == rule.rule and r["measure"] == rule.measure
    ]
    if not mine:
        return None
    i = mine[0]
    others_pass = measured.failed_rules - measured.fails[i] == 0
    return _curve(
        rule,
        measured.values[i][others_pass],
        measured.ids[others_pass],
        measured.shards[others_pass],
        "measures",
        True,
        True,
    )


def _from_column(run_dir: Path, step_dir: str, n: int, rule: Rule, exact: bool) -> Curve | None:
    parts: list[tuple[int, pa.Table, bool]] = []  # (shard, _id + value, kept)
    for k in range(n):
        kept = files.columns(shard_file(run_dir, "steps", step_dir, k), [ID, rule.measure])
        if kept is None or rule.measure not in kept.column_names:
            return None
        parts.append((k, kept, True))
        dropped = files.columns(
            shard_file(run_dir, "dropped", step_dir, k), [ID, rule.measure, REASON]
        )
        if dropped is not None and rule.measure in dropped.column_names:
            mine = pc.fill_null(pc.starts_with(dropped[REASON], rule.reason_prefix), False)
            parts.append((k, dropped.filter(mine).select([ID, rule.measure]), False))
    try:
        values = np.concatenate([_floats(t[rule.measure]) for _, t, _ in parts] or [np.zeros(0)])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return None  # not a number: not what the rule measured
    kept_mask = np.concatenate([np.full(t.num_rows, was_kept) for _, t, was_kept in parts] or [np.zeros(0, bool)])  # fmt: skip
    if np.any(_keeps(values, rule.op, rule.threshold) != kept_mask):
        return None  # a column of that name that does not decide the rule as recorded
    ids = np.concatenate([_ints(t[ID]) for _, t, _ in parts] or [np.zeros(0, np.int64)])
    shards = np.concatenate([np.full(t.num_rows, k) for k, t, _ in parts] or [np.zeros(0, int)])
    return _curve(rule, values, ids, shards, "column", exact, True)


def _keeps(values: np.ndarray, op: str, t: float) -> np.ndarray:
    """Which values a rule that drops ``value op t`` keeps; NaN (not measured) never fails."""
    with np.errstate(invalid="ignore"):
        fails = {"<": values < t, "<=": values <= t, ">": values > t, ">=": values >= t}[op]
    return ~fails


def _from_reasons(run_dir: Path, step_dir: str, n: int, rule: Rule, kept: int) -> Curve | None:
    pattern = "^" + re.escape(rule.reason_prefix) + r"(?P<value>[-+\w.]+)"
    ids, values, shards = [], [], []
    for k in range(n):
        table = files.columns(shard_file(run_dir, "dropped", step_dir, k), [ID, REASON])
        if table is None:
            continue
        found = pc.extract_regex(pc.fill_null(table[REASON], ""), pattern)
        mine = pc.is_valid(found)
        quoted = pc.struct_field(found.filter(mine), "value").to_pylist()
        for row_id, text in zip(table[ID].filter(mine).to_pylist(), quoted, strict=True):
            try:
                value = float(text)
            except ValueError:
                continue
            ids.append(row_id)
            values.append(value)
            shards.append(k)
    if not values:
        return None
    curve = _curve(rule, np.array(values), np.array(ids), np.array(shards), "reasons", False, False)
    curve.base = kept  # rows kept now: their values are unknown, a looser threshold keeps them
    return curve


def _curve(
    rule: Rule,
    values: np.ndarray,
    ids: np.ndarray,
    shards: np.ndarray,
    source: str,
    exact: bool,
    stricter: bool,
) -> Curve:
    finite = np.isfinite(values)
    order = np.argsort(values[finite], kind="stable")
    return Curve(
        rule,
        values[finite][order],
        ids[finite][order],
        shards[finite][order],
        int((~finite).sum()),
        source,
        exact,
        stricter,
    )


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _ints(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False).astype(np.int64)


def _nice(x: float) -> float:
    """1, 2 or 5 times a power of ten, at most ``x``."""
    power = 10 ** math.floor(math.log10(x))
    return max(m * power for m in (1, 2, 5) if m * power <= x)


def format_threshold(t: float, integral: bool) -> str:
    return str(round(t)) if integral else f"{t:.6g}"
