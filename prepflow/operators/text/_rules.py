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
from prepflow.operators.text._stats import DocStats

Measure = Callable[[DocStats], np.ndarray]


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
        stats = DocStats(batch.column(self.col("text")))
        active = [r for r in self.rules() if r.threshold is not None]
        if not active:
            return pa.array(np.ones(stats.n, dtype=bool))
        failed = np.full(stats.n, -1)
        values = np.zeros(stats.n)
        columns: dict[str, np.ndarray] = {}  # every rule's values, each distinct column once
        described = []
        for k, rule in enumerate(active):
            measured = np.asarray(rule.compute(stats), dtype=np.float64)
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
        reasons = [
            None if f < 0 else active[f].reason(values[i]) for i, f in enumerate(failed.tolist())
        ]
        measures = pa.table(
            {name: pa.array(v, pa.float64()) for name, v in columns.items()}
        ).replace_schema_metadata({MEASURED_RULES: json.dumps(described).encode()})
        return pa.array(failed < 0), pa.array(reasons, pa.string()), measures


def _column_for(columns: dict[str, np.ndarray], rule: Rule, measured: np.ndarray) -> str:
    """The column of ``rule``'s values: named after its measure, and shared by a second rule
    that measures the same (a minimum and a maximum); a different measure under a name already
    taken is named after the rule's parameter."""
    same = columns.get(rule.measure)
    if same is None or np.array_equal(same, measured, equal_nan=True):
        return rule.measure
    return rule.param
