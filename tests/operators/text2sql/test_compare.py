"""The result comparator: a labelled set of (gold, pred) pairs run on real databases, and the
rules on literal rows."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from prepflow.core.context import QueryResult, QueryStatus
from prepflow.operators.text2sql.compare import GoldOrder, compare_results, compare_rows
from prepflow.operators.text2sql.judge import ExecutionJudge
from prepflow.sandbox.sql import open_database

from .conftest import source_of

PAIRS = [json.loads(line) for line in (Path(__file__).parent / "comparator_pairs.jsonl").open()]
_judges: dict[str, ExecutionJudge] = {}


def judge_for(name: str) -> ExecutionJudge:
    if name not in _judges:
        _judges[name] = ExecutionJudge(
            open_database(*source_of(name)), timeout_s=0.5, max_rows=5000
        )
    return _judges[name]


def test_the_labelled_set_covers_what_it_must() -> None:
    assert len(PAIRS) >= 60
    covers = " ".join(p["covers"] for p in PAIRS)
    for topic in ("alias", "column order", "distinct", "order by", "limit", "tie", "NULL", "float"):
        assert topic.lower() in covers.lower(), topic
    reasons = Counter(p["reason"] for p in PAIRS)
    assert set(reasons) == {
        None,
        "gold error",
        "pred error",
        "timeout",
        "limit",
        "different rows",
        "different order",
    }
    assert 0.35 < reasons[None] / len(PAIRS) < 0.65


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{i}-{p['covers']}" for i, p in enumerate(PAIRS)])
def test_labelled_pair(pair: dict) -> None:
    verdict = judge_for(pair["db"]).judge(pair["gold"], pair["pred"])
    assert (verdict.correct, verdict.reason) == (pair["correct"], pair["reason"]), str(verdict)


def ok(rows: list[tuple], columns: int | None = None) -> QueryResult:
    n = columns if columns is not None else (len(rows[0]) if rows else 1)
    return QueryResult(QueryStatus.OK, tuple(f"c{i}" for i in range(n)), rows)


def test_numbers_compare_closely_and_across_types() -> None:
    assert compare_rows([(1.0000001,)], [(1.0,)]).correct
    assert not compare_rows([(1.001,)], [(1.0,)]).correct
    assert compare_rows([(True, 3)], [(1, 3.0)]).correct
    assert compare_rows([(0.12345649999,)], [(0.1234565,)]).correct  # across a rounding edge


def test_ties_when_keys_are_selected() -> None:
    order = GoldOrder(ordered=True, key_columns=(1,))
    gold = [("a", 1), ("b", 1), ("c", 2)]
    assert compare_rows(gold, [("b", 1), ("a", 1), ("c", 2)], order).correct
    v = compare_rows(gold, [("c", 2), ("a", 1), ("b", 1)], order)
    assert (v.correct, v.reason) == (False, "different order")


def test_limit_boundary_uses_the_tie_pool() -> None:
    order = GoldOrder(ordered=True, limited=True, key_columns=(1,))
    gold = [("a", 1), ("b", 2)]
    pred = [("a", 1), ("z", 2)]
    assert compare_rows(gold, pred, order).reason == "different rows"
    assert compare_rows(gold, pred, order, tie_pool=[("b", 2), ("z", 2)]).correct
    assert not compare_rows(gold, pred, order, tie_pool=[("b", 2), ("y", 2)]).correct


def test_a_tie_pool_read_by_one_thread_serves_all() -> None:
    """Predictions for one gold query judged at once all wait for the one read of its tie pool."""
    judge = ExecutionJudge(open_database(*source_of("chinook")), timeout_s=5, max_rows=5000)
    gold = "SELECT name FROM track WHERE album = 1 ORDER BY unit_price LIMIT 3"
    pred = judge.run(
        "SELECT name FROM track WHERE album = 1 ORDER BY unit_price DESC, name LIMIT 3"
    )
    start = threading.Barrier(8)

    def judged(_: int) -> bool:
        start.wait()
        return judge.judge_result(gold, pred).correct

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(judged, range(8)))


def test_status_reasons() -> None:
    gold = ok([(1,)])
    for status, reason in [
        (QueryStatus.TIMEOUT, "timeout"),
        (QueryStatus.ROW_LIMIT, "limit"),
        (QueryStatus.SIZE_LIMIT, "limit"),
        (QueryStatus.MEMORY, "limit"),
        (QueryStatus.ERROR, "pred error"),
        (QueryStatus.DENIED, "pred error"),
    ]:
        assert compare_results(gold, QueryResult(status, error="x")).reason == reason
    assert compare_results(QueryResult(QueryStatus.TIMEOUT), gold).reason == "gold error"
