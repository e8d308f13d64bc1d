"""Threshold rules over :class:`DocStats` measures, and the filter base that applies them.

A rule compares one per-document measure with a bound; a rule whose threshold is ``None`` is
disabled. :class:`RuleFilter` evaluates its rules in order over a whole batch and records, for
each dropped document, the first rule it failed: the parameter that sets the threshold, the
measure and its value, e.g. ``"max_avg_word_length: mean_word_length=12.3 > 10"`` (the report
groups the drops by rule and threshold, and histograms the values). It also returns every
document's measured values (``measures``: one column per measure, the rules in the schema
metadata), which the run keeps so that the dashboard can say what another threshold would keep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from prepflow.core.columns import Column
from prepflow.core.operator import MEASURED_RULES, FilterOperator
from prepflow.core.tables import from_numpy, strings
from prepflow.operators.common.utf8 import doc_ranges, plain, string_offsets
from prepflow.operators.text._stats import DocStats

Measure = Callable[[DocStats], np.ndarray]
#: Text measured at once by a rule filter: bounds the per-word and per-line arrays whatever the
#: shard's size (about 60 bytes of arrays per word).
MEASURE_BYTES = 1 << 20


@dataclass(frozen=True)
class Rule:
    """Drop a document whose ``measure`` is below (``min``) or above (``max``) ``threshold``,
    the value of the parameter ``param``."""

    param: str
    measure: str
    bound: Literal["min", "max"]
    threshold: float | None
    compute: Measure

    def fails(self, values: np.ndarray) -> np.ndarray:
        """Documents breaking the rule; NaN (measure not applicable) never fails."""
        with np.errstate(invalid="ignore"):
            return values < self.threshold if self.bound == "min" else values > self.threshold

    def reason(self, value: float) -> str:
        op = "<" if self.bound == "min" else ">"
        return f"{self.param}: {self.measure}={value:.4g} {op} {self.threshold:g}"


def at_least(param: str, measure: str, threshold: float | None, compute: Measure) -> Rule:
    return Rule(param, measure, "min", threshold, compute)


def at_most(param: str, measure: str, threshold: float | None, compute: Measure) -> Rule:
    return Rule(param, measure, "max", threshold, compute)


def attr(name: str) -> Measure:
    """A measure read from the :class:`DocStats` attribute ``name``."""
    return lambda s: getattr(s, name)


class RuleFilter(FilterOperator):
    """Base of the text heuristic filters: a list of threshold rules over shared measures."""

    abstract = True
    domain = "text"
    cpu_heavy = True
    inputs = (Column("text", "string", "Document text to judge."),)

    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def check(self) -> list[str]:
        lows = {r.measure: r.threshold for r in self.rules() if r.bound == "min"}
        return [
            f"{self.name}: minimum {r.measure}={lows[r.measure]:g} exceeds {r.param}={r.threshold:g}"
            for r in self.rules()
            if r.bound == "max"
            and r.threshold is not None
            and lows.get(r.measure) is not None
            and lows[r.measure] > r.threshold
        ]

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array, pa.Table] | pa.Array:
        texts = plain(batch.column(self.col("text")))
        active = [r for r in self.rules() if r.threshold is not None]
        if not active:
            return from_numpy(np.ones(len(texts), dtype=bool))
        failed = np.full(len(texts), -1)
        values = np.zeros(len(texts))
        columns: dict[str, np.ndarray] = {}  # every rule's values, each distinct column once
        described = []
        for k, (rule, measured) in enumerate(zip(active, _measure(active, texts), strict=True)):
            column = _column_for(columns, rule, measured)
            columns.setdefault(column, measured)
            described.append(
                {
                    "param": rule.param,
                    "measure": rule.measure,
                    "bound": rule.bound,
                    "threshold": rule.threshold,
                    "column": column,
                }
            )
            new = rule.fails(measured) & (failed < 0)
            failed[new] = k
            values[new] = measured[new]
        measures = pa.table(
            {name: from_numpy(v.astype(np.float64)) for name, v in columns.items()}
        ).replace_schema_metadata({MEASURED_RULES: json.dumps(described).encode()})
        return from_numpy(failed < 0), _reasons(active, failed, values), measures


def _reasons(rules: list[Rule], failed: np.ndarray, values: np.ndarray) -> pa.Array:
    """Each document's reason (null where kept): every distinct value of a rule is formatted
    once (most drops share a few word counts or ratios), then gathered."""
    texts: list[str] = []
    index = np.full(len(failed), -1, dtype=np.int64)
    for k, rule in enumerate(rules):
        rows = np.flatnonzero(failed == k)
        if not len(rows):
            continue
        distinct, which = np.unique(values[rows], return_inverse=True)
        index[rows] = len(texts) + which
        texts += [rule.reason(v) for v in distinct.tolist()]
    indices = from_numpy(index, valid=index >= 0)
    return pa.DictionaryArray.from_arrays(indices, strings(texts)).cast(pa.string())


def _measure(rules: list[Rule], texts: pa.Array) -> list[np.ndarray]:
    """Each rule's measure of every document, taken a slice of documents at a time: the
    per-word and per-line arrays of one slice stay small (and in cache) whatever the shard's
    size, and every measure is per document."""
    parts: list[list[np.ndarray]] = [[] for _ in rules]
    for lo, hi in doc_ranges(string_offsets(texts), MEASURE_BYTES):
        stats = DocStats(texts.slice(lo, hi - lo))
        for measured, rule in zip(parts, rules, strict=True):
            measured.append(np.asarray(rule.compute(stats), dtype=np.float64))
    return [np.concatenate(p) for p in parts]


def _column_for(columns: dict[str, np.ndarray], rule: Rule, measured: np.ndarray) -> str:
    """The column of ``rule``'s values: named after its measure, and shared by a second rule
    that measures the same (a minimum and a maximum); a different measure under a name already
    taken is named after the rule's parameter."""
    same = columns.get(rule.measure)
    if same is None or np.array_equal(same, measured, equal_nan=True):
        return rule.measure
    return rule.param
