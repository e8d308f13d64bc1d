"""What a report says about dropped and failed rows: grouped by rule (with its real threshold),
a histogram of the measured values, and a few example rows, read from the run's side files.

Only the ``_reason`` (or ``_error_type``/``_error``) column is read for counting; row text is read
for the few examples only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prepflow.core.operator import ERROR, ERROR_TYPE, ID, REASON
from prepflow.core.reasons import parse_reason
from prepflow.core.tables import distinct, fill_null, from_numpy, to_numpy
from prepflow.data.runstore import RunStore
from prepflow.engine.compiler import CompiledStep

EXAMPLES = 3
SNIPPET_CHARS = 120
BINS = 8


@dataclass
class Group:
    """One rule (or error kind) of one step: how many rows, their values, examples."""

    key: str
    count: int = 0
    values: list[float] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "count": self.count, "examples": self.examples}
        if self.values:
            v = np.sort(np.asarray(self.values))
            mid = len(v) // 2
            out["values"] = {
                "min": float(v[0]),
                # np.median would import numpy.ma (numpy 2.x, ~7 ms) at the end of every run
                "median": float(v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2),
                "max": float(v[-1]),
                "histogram": histogram(v),
            }
        return out


def histogram(values: np.ndarray, bins: int = BINS) -> list[list[float]]:
    """[[low, high, rows], ...]: one bin per distinct value when there are few, whole-number bins
    for counts, else equal bins."""
    values_seen = distinct(values)
    if len(values_seen) <= bins:
        return [[float(x), float(x), int((values == x).sum())] for x in values_seen]
    lo, hi = float(values.min()), float(values.max())
    if np.all(values == np.round(values)):  # counts: bins of whole numbers, low to high inclusive
        width = int(np.ceil((hi - lo + 1) / bins))
        starts = np.arange(lo, hi + 1, width)
        which = ((values - lo) // width).astype(int)
        return [
            [float(a), min(float(a + width - 1), hi), int((which == i).sum())]
            for i, a in enumerate(starts)
        ]
    counts, edges = np.histogram(values, bins=bins)
    return [[float(edges[i]), float(edges[i + 1]), int(counts[i])] for i in range(bins)]


def drop_groups(store: RunStore, step: CompiledStep) -> list[dict[str, Any]]:
    """The dropped rows of ``step``, grouped by rule, largest group first."""
    return _groups(store, step, "dropped", (REASON,), parse_reason)


def failure_groups(store: RunStore, step: CompiledStep) -> list[dict[str, Any]]:
    """The failed rows of ``step``, grouped by error type, largest group first."""
    return _groups(store, step, "failures", (ERROR_TYPE, ERROR), _ErrorKey)


@dataclass(frozen=True)
class _ErrorKey:
    key: str
    value: float | None = None


def _groups(
    store: RunStore, step: CompiledStep, kind: str, columns: tuple[str, ...], parse: Any
) -> list[dict[str, Any]]:
    """Rows grouped by ``parse`` of their first column; each distinct value is parsed once
    (a filter's reasons repeat: the same word count, the same error type)."""
    groups: dict[str, Group] = {}
    texts = _text_columns(step)
    for path in store.side_files(kind, step.dirname):
        table = store.read_columns(path, columns)
        encoded = fill_null(table[columns[0]], "").combine_chunks().dictionary_encode()
        which = to_numpy(encoded.indices).astype(np.int64)
        counts = np.bincount(which, minlength=len(encoded.dictionary))
        group_of = []  # each distinct value's group, in order of first appearance
        for value, count in zip(encoded.dictionary.to_pylist(), counts.tolist(), strict=True):
            parsed = parse(value)
            group = groups.setdefault(parsed.key, Group(parsed.key))
            group.count += count
            if parsed.value is not None and np.isfinite(parsed.value):
                group.values += [parsed.value] * count
            group_of.append(group)
        ids = {id(g): n for n, g in enumerate(groups.values())}
        rows = _first_rows(
            np.array([ids[id(g)] for g in group_of], dtype=np.int64)[which],
            [EXAMPLES - len(g.examples) for g in groups.values()],
        )
        if len(rows):
            shown = table[columns[-1]].take(from_numpy(rows)).to_pylist()
            examples = _example_rows(store, path, texts, rows.tolist())
            for row, note, example in zip(rows.tolist(), shown, examples, strict=True):
                example["reason" if kind == "dropped" else "error"] = note
                group_of[which[row]].examples.append(example)
    return [g.to_dict() for g in sorted(groups.values(), key=lambda g: -g.count)]


def _first_rows(group: np.ndarray, wanted: list[int]) -> np.ndarray:
    """The first ``wanted[g]`` rows of each group ``g`` (``group``: each row's), in row order."""
    order = np.argsort(group, kind="stable")
    ranked = group[order]
    starts = np.searchsorted(ranked, ranked)  # each row's group's first place in ``order``
    rank = np.arange(len(order)) - starts
    return np.sort(order[rank < np.asarray(wanted, dtype=np.int64)[ranked]])


def _text_columns(step: CompiledStep) -> list[str]:
    """The string columns the step saw (an example shows the one with the most text)."""
    return [n for n, t in step.schema_in.items() if t == "string" and not n.startswith("_")]


def _example_rows(store: RunStore, path: Any, texts: list[str], rows: list[int]) -> list[dict]:
    table = store.read_columns(path, (ID, *texts), missing_ok=True).take(
        from_numpy(np.asarray(rows, dtype=np.int64))
    )
    present = [t for t in texts if t in table.column_names]
    longest = max(
        present,
        key=lambda c: sum(len(v) for v in table[c].to_pylist() if isinstance(v, str)),
        default=None,
    )
    out = []
    for row in table.to_pylist():
        example: dict[str, Any] = {"_id": row.get(ID)}
        if longest is not None and isinstance(row.get(longest), str):
            example[longest] = snippet(row[longest])
        out.append(example)
    return out


def snippet(text: str, width: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
