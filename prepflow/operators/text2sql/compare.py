"""The one result comparator: is a predicted query's result the gold query's result?

Used by every Text-to-SQL operator and by ``prepflow eval text2sql``. The rules:

* **Rows are a multiset.** Order matters only when the gold query has a top-level ORDER BY; then
  rows must come in the gold order, except that rows tied on the ORDER BY keys may come in any
  order among themselves (the database may return ties either way). With ORDER BY ... LIMIT,
  the rows of the last tied group may be any rows of that group (``tie_pool``).
* **Column names and column order do not matter**: columns are matched by their values, as the
  Spider test-suite evaluation does (each gold column to a distinct predicted column, trying
  the pairings whose value multisets agree). The column count must agree.
* **Numbers**: ints, floats, decimals and booleans compare as numbers (``3 == 3.0``, ``True ==
  1``); floats agree when they are close (relative 1e-6, absolute 1e-9).
* **NULL** equals NULL and nothing else (not 0, not ''). Strings compare exactly (case and
  spaces count); bytes exactly; any other value by its ``str``.

The verdict's ``reason`` is one of ``gold error``, ``pred error``, ``timeout``, ``limit``,
``different rows``, ``different order`` (None when correct), with a ``detail``.
"""

from __future__ import annotations

import decimal
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from prepflow.core.context import QueryResult, QueryStatus

REL_TOL, ABS_TOL = 1e-6, 1e-9
#: Column pairings tried before giving up (only reached with many columns of equal values).
MAX_PAIRINGS = 20_000

GOLD_ERROR, PRED_ERROR, TIMEOUT, LIMIT = "gold error", "pred error", "timeout", "limit"
DIFFERENT_ROWS, DIFFERENT_ORDER = "different rows", "different order"
REASONS = (GOLD_ERROR, PRED_ERROR, TIMEOUT, LIMIT, DIFFERENT_ROWS, DIFFERENT_ORDER)


@dataclass(frozen=True)
class GoldOrder:
    """What the gold query's ORDER BY asks of a result (see :func:`~.sqltools.gold_order`)."""

    ordered: bool = False  # a top-level ORDER BY
    limited: bool = False  # ... with a LIMIT: the last tie group may be cut anywhere
    #: output positions of the ORDER BY keys; None when some key is not an output column
    key_columns: tuple[int, ...] | None = None


UNORDERED = GoldOrder()


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        return "correct" if self.correct else f"{self.reason}: {self.detail}".rstrip(": ")


def _key(v: Any) -> tuple:
    """A hashable canonical form: numbers rounded to 6 significant digits (the close-compare
    below settles rounding boundaries)."""
    t = type(v)
    if t is str:
        return ("s", v)
    if t is int:
        return ("n", v)
    if v is None:
        return ("",)
    if isinstance(v, bool):
        return ("n", int(v))
    if isinstance(v, int):
        return ("n", v)
    if isinstance(v, float | decimal.Decimal):
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            return ("n", str(f))
        if f.is_integer() and abs(f) < 2**53:
            return ("n", int(f))
        return ("n", float(f"{f:.6g}"))
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, bytes | bytearray | memoryview):
        return ("b", bytes(v))
    return ("s", str(v))


def _number(v: Any) -> float | None:
    if isinstance(v, bool | int | float | decimal.Decimal):
        return float(v)
    return None


def values_equal(a: Any, b: Any) -> bool:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return x == y or math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return _key(a) == _key(b)


def _rows_equal(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))


def _has_float(rows: Sequence[Sequence[Any]]) -> bool:
    return any(isinstance(v, float | decimal.Decimal) for r in rows for v in r)


def _sort_key(row: Sequence[Any]) -> tuple:
    return tuple(_key(v) for v in row)


def same_multiset(
    a: Sequence[Sequence[Any]],
    b: Sequence[Sequence[Any]],
    a_keys: Sequence[tuple] | None = None,
    b_keys: Sequence[tuple] | None = None,
) -> bool:
    """Equal as multisets of rows, numbers compared closely (``*_keys``: the rows' ``_sort_key``
    when already computed)."""
    if len(a) != len(b):
        return False
    ak = a_keys if a_keys is not None else list(map(_sort_key, a))
    bk = b_keys if b_keys is not None else list(map(_sort_key, b))
    if Counter(ak) == Counter(bk):
        return True
    if not (_has_float(a) or _has_float(b)):
        return False
    return all(
        _rows_equal(x, y)
        for x, y in zip(sorted(a, key=_sort_key), sorted(b, key=_sort_key), strict=True)
    )


def _contained(part: Sequence[Sequence[Any]], pool: Sequence[Sequence[Any]]) -> bool:
    left = list(pool)
    for row in part:
        for i, candidate in enumerate(left):
            if _rows_equal(row, candidate):
                del left[i]
                break
        else:
            return False
    return True


def _groups(keys: Sequence[tuple]) -> list[tuple[int, int]]:
    """[start, stop) runs of equal consecutive keys."""
    bounds = [0] + [i + 1 for i, (x, y) in enumerate(pairwise(keys)) if not _rows_equal(x, y)]
    return list(pairwise([*bounds, len(keys)]))


def _pairings(
    gold: list[list[Any]], pred: list[list[Any]], gold_k: list[tuple], pred_k: list[tuple]
) -> list[list[int]]:
    """For each gold column, the predicted columns whose values are the same multiset
    (``*_k``: the columns' keys)."""
    pred_keys = [Counter(col) for col in pred_k]
    out = []
    for col, col_k in zip(gold, gold_k, strict=True):
        want = Counter(col_k)
        exact = [j for j, have in enumerate(pred_keys) if have == want]
        if not exact and any(isinstance(v, float) for v in col):
            exact = [
                j for j, p in enumerate(pred) if same_multiset([[v] for v in col], [[v] for v in p])
            ]
        out.append(exact)
    return out


def _assignments(candidates: list[list[int]]) -> Any:
    """Bijections gold column -> predicted column within the candidates, most constrained first."""
    order = sorted(range(len(candidates)), key=lambda i: len(candidates[i]))
    chosen: dict[int, int] = {}
    used: set[int] = set()

    def walk(k: int) -> Any:
        if k == len(order):
            yield [chosen[i] for i in range(len(candidates))]
            return
        i = order[k]
        for j in candidates[i]:
            if j not in used:
                chosen[i] = j
                used.add(j)
                yield from walk(k + 1)
                used.discard(j)

    return walk(0)


def _status_verdict(gold: QueryResult, pred: QueryResult) -> Verdict | None:
    if gold.status is not QueryStatus.OK:
        return Verdict(False, GOLD_ERROR, f"{gold.status.value}: {gold.error or ''}".rstrip(": "))
    if pred.status is QueryStatus.TIMEOUT:
        return Verdict(False, TIMEOUT, pred.error or "statement timeout")
    if pred.status in (QueryStatus.ROW_LIMIT, QueryStatus.SIZE_LIMIT, QueryStatus.MEMORY):
        return Verdict(False, LIMIT, f"{pred.status.value}: {pred.error or ''}".rstrip(": "))
    if pred.status is not QueryStatus.OK:
        return Verdict(False, PRED_ERROR, f"{pred.status.value}: {pred.error or ''}".rstrip(": "))
    return None


def compare_results(
    gold: QueryResult,
    pred: QueryResult,
    order: GoldOrder = UNORDERED,
    *,
    gold_keys: Sequence[tuple] | None = None,
    tie_pool: Sequence[Sequence[Any]] | None = None,
) -> Verdict:
    """The verdict on ``pred`` against ``gold``.

    ``gold_keys`` gives each gold row's ORDER BY key when the keys are not output columns (the
    judge reads them with a second query); without keys, an ordered result must match row for
    row. ``tie_pool``: every row (gold column order) of the whole, un-LIMITed gold result that
    ties with its last row, so a LIMIT may cut that tie group differently.
    """
    if (early := _status_verdict(gold, pred)) is not None:
        return early
    return compare_rows(
        gold.rows,
        pred.rows,
        order,
        gold_keys=gold_keys,
        tie_pool=tie_pool,
        n_gold_cols=len(gold.columns),
        n_pred_cols=len(pred.columns),
    )


def compare_rows(
    gold_rows: Sequence[Sequence[Any]],
    pred_rows: Sequence[Sequence[Any]],
    order: GoldOrder = UNORDERED,
    *,
    gold_keys: Sequence[tuple] | None = None,
    tie_pool: Sequence[Sequence[Any]] | None = None,
    n_gold_cols: int | None = None,
    n_pred_cols: int | None = None,
) -> Verdict:
    """:func:`compare_results` on bare rows (both queries ran)."""
    g_cols = n_gold_cols if n_gold_cols is not None else (len(gold_rows[0]) if gold_rows else 0)
    p_cols = n_pred_cols if n_pred_cols is not None else (len(pred_rows[0]) if pred_rows else 0)
    if gold_rows and pred_rows and g_cols != p_cols:
        return Verdict(False, DIFFERENT_ROWS, f"gold has {g_cols} columns, pred {p_cols}")
    if len(gold_rows) != len(pred_rows):
        return Verdict(
            False, DIFFERENT_ROWS, f"gold has {len(gold_rows)} rows, pred {len(pred_rows)}"
        )
    if not gold_rows:
        return Verdict(True)
    gold_keyed = [tuple(map(_key, r)) for r in gold_rows]
    pred_keyed = [tuple(map(_key, r)) for r in pred_rows]
    groups = [(0, len(gold_rows))]
    if order.ordered:
        if gold_keys is None and order.key_columns is not None:
            gold_keys = [tuple(r[i] for i in order.key_columns) for r in gold_rows]
        groups = (
            _groups(gold_keys)
            if gold_keys is not None
            else [(i, i + 1) for i in range(len(gold_rows))]
        )
    # columns are paired on rows that must match exactly: all of them, or with a LIMIT that may
    # cut the last tie group differently, the rows before that group
    fixed = groups[-1][0] if (order.limited and tie_pool) else len(gold_rows)
    if fixed:
        gold_t = [list(c) for c in zip(*gold_rows[:fixed], strict=True)]
        pred_t = [list(c) for c in zip(*pred_rows[:fixed], strict=True)]
        gold_kt = list(zip(*gold_keyed[:fixed], strict=True))
        pred_kt = list(zip(*pred_keyed[:fixed], strict=True))
        candidates = _pairings(gold_t, pred_t, gold_kt, pred_kt)
    else:
        candidates = [list(range(p_cols))] * g_cols
    if missing := [i for i, c in enumerate(candidates) if not c]:
        return Verdict(
            False,
            DIFFERENT_ROWS,
            f"no predicted column has the values of gold column {missing[0] + 1}",
        )
    unordered_match = False
    for tried, mapping in enumerate(_assignments(candidates)):
        if tried >= MAX_PAIRINGS:
            return Verdict(False, DIFFERENT_ROWS, f"gave up after {MAX_PAIRINGS} column pairings")
        pred = [tuple(row[j] for j in mapping) for row in pred_rows]
        pred_k = [tuple(row[j] for j in mapping) for row in pred_keyed]
        if not order.ordered:
            if same_multiset(gold_rows, pred, gold_keyed, pred_k):
                return Verdict(True)
            continue
        if _in_order(gold_rows, pred, gold_keyed, pred_k, groups, order.limited, tie_pool):
            return Verdict(True)
        unordered_match = unordered_match or same_multiset(gold_rows, pred, gold_keyed, pred_k)
    if unordered_match:
        return Verdict(False, DIFFERENT_ORDER, "same rows in another order than the gold ORDER BY")
    return Verdict(False, DIFFERENT_ROWS, "no pairing of columns gives the gold rows")


def _in_order(
    gold: Sequence[Sequence[Any]],
    pred: Sequence[tuple],
    gold_k: Sequence[tuple],
    pred_k: Sequence[tuple],
    groups: list[tuple[int, int]],
    limited: bool,
    tie_pool: Sequence[Sequence[Any]] | None,
) -> bool:
    for n, (start, stop) in enumerate(groups):
        last = n == len(groups) - 1
        a, b = gold_k[start:stop], pred_k[start:stop]
        if (stop - start == 1 and a == b) or same_multiset(
            gold[start:stop], pred[start:stop], a, b
        ):
            continue
        if last and limited and tie_pool is not None and _contained(pred[start:stop], tie_pool):
            continue
        return False
    return True
