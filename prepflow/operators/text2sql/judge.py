"""Execution-based judging: run the gold and the predicted SQL on a database, compare results.

:class:`ExecutionJudge` is what every operator that checks SQL against a gold query uses, and
what ``prepflow eval text2sql`` uses: one comparator (:mod:`.compare`), gold results run once
and cached, and the extra reads the comparator needs for ORDER BY ties (each gold row's sort
key when the keys are not selected; the whole tie group cut by a LIMIT) made only when a
verdict depends on them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prepflow.core.context import Database, QueryResult
from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql.compare import GoldOrder, Verdict, compare_results, values_equal


@dataclass
class GoldRun:
    result: QueryResult
    order: GoldOrder
    keys: list[tuple] | None = None  # each row's ORDER BY key, when not output columns
    pool: list[tuple] | None = None  # rows tied with the last one in the un-LIMITed result
    pool_read: bool = False
    pool_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class ExecutionJudge:
    """Judges predicted SQL against gold SQL on one database (thread-safe)."""

    def __init__(
        self, db: Database, *, timeout_s: float | None = None, max_rows: int | None = None
    ) -> None:
        self.db, self.timeout_s, self.max_rows = db, timeout_s, max_rows
        self._gold: dict[str, GoldRun] = {}
        self._lock = threading.Lock()

    def run(self, sql: str) -> QueryResult:
        return self.db.execute(sql, timeout_s=self.timeout_s, max_rows=self.max_rows)

    def gold(self, sql: str) -> GoldRun:
        with self._lock:
            cached = self._gold.get(sql)
        if cached is not None:
            return cached
        result = self.run(sql)
        order = sqltools.gold_order(sql, self.db.dialect)
        run = GoldRun(result, order)
        if result.ok and order.ordered and order.key_columns is None:
            keyed = sqltools.keyed_sql(sql, self.db.dialect)
            if keyed is not None:
                extra = self.run(keyed)
                n = len(result.columns)
                if extra.ok and len(extra.rows) == len(result.rows):
                    run.keys = [tuple(r[n:]) for r in extra.rows]
                    run.result = QueryResult(
                        result.status,
                        result.columns,
                        [tuple(r[:n]) for r in extra.rows],
                        result.error,
                        result.duration_s,
                    )
        with self._lock:
            return self._gold.setdefault(sql, run)

    def _tie_pool(self, sql: str, run: GoldRun) -> list[tuple] | None:
        # predictions for one gold query are judged on several threads: one reads, the others wait
        with run.pool_lock:
            if not run.pool_read:
                run.pool = self._read_tie_pool(sql, run)
                run.pool_read = True
            return run.pool

    def _read_tie_pool(self, sql: str, run: GoldRun) -> list[tuple] | None:
        keyed = sqltools.keyed_sql(sql, self.db.dialect, drop_limit=True)
        if keyed is None or not run.result.rows:
            return None
        whole = self.run(keyed)
        if not whole.ok:
            return None
        n = len(run.result.columns)
        last = self._key_of(run, len(run.result.rows) - 1)
        return [
            tuple(r[:n])
            for r in whole.rows
            if len(r[n:]) == len(last)
            and all(values_equal(a, b) for a, b in zip(r[n:], last, strict=True))
        ]

    @staticmethod
    def _key_of(run: GoldRun, i: int) -> tuple:
        if run.keys is not None:
            return run.keys[i]
        cols = run.order.key_columns or ()
        return tuple(run.result.rows[i][c] for c in cols)

    def judge(self, gold_sql: str, pred_sql: str) -> Verdict:
        return self.judge_result(gold_sql, self.run(pred_sql))

    def judge_result(self, gold_sql: str, pred: QueryResult) -> Verdict:
        """The verdict on an already executed prediction."""
        run = self.gold(gold_sql)
        verdict = compare_results(run.result, pred, run.order, gold_keys=run.keys)
        if (
            not verdict.correct
            and run.order.limited
            and verdict.reason in ("different rows", "different order")
            and (run.keys is not None or run.order.key_columns is not None)
            and len(pred.rows) == len(run.result.rows)
        ):
            pool = self._tie_pool(gold_sql, run)
            if pool:
                verdict = compare_results(
                    run.result, pred, run.order, gold_keys=run.keys, tie_pool=pool
                )
        return verdict
