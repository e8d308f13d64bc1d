"""Execution accuracy of predicted SQL: ``prepflow eval text2sql``.

Each input row has ``question``, ``gold_sql``, ``pred_sql`` and, when ``--db`` names a
directory or Spider/BIRD layout, ``db_id``. Both queries run on the read-only database (worker
processes with a timeout, row cap and memory limit) and the one result comparator
(:mod:`prepflow.operators.text2sql.compare`) decides. Every input row gets one verdict, in input
order: the row plus ``correct``, ``reason`` (``gold error``, ``pred error``, ``timeout``,
``limit``, ``different rows``, ``different order``; '' when correct), ``detail`` and the gold
query's Spider ``difficulty``.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from prepflow.core.errors import ConfigError, InputError
from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql.judge import ExecutionJudge
from prepflow.sandbox.sql import open_database

REQUIRED = ("gold_sql", "pred_sql")
DIFFICULTIES = ("easy", "medium", "hard", "extra", "unknown")


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """The JSONL rows, each checked for the fields the evaluation needs (errors name file:line)."""
    rows = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=str(path)) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise InputError(f"not JSON: {e}", path=str(path), line=n) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path=str(path), line=n)
        for name in REQUIRED:
            if not isinstance(row.get(name), str):
                raise InputError(
                    f"field {name!r} is missing or not a string", path=str(path), line=n
                )
        rows.append(row)
    return rows


@dataclass
class Summary:
    total: int = 0
    correct: int = 0
    by_difficulty: dict[str, list[int]] = field(default_factory=dict)  # [correct, total]
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def add(self, verdict: dict[str, Any]) -> None:
        self.total += 1
        self.correct += verdict["correct"]
        cell = self.by_difficulty.setdefault(verdict["difficulty"], [0, 0])
        cell[0] += verdict["correct"]
        cell[1] += 1
        if not verdict["correct"]:
            self.reasons[verdict["reason"]] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "correct": self.correct,
            "execution_accuracy": round(self.accuracy, 4),
            "by_difficulty": {
                d: {"correct": c, "total": t, "execution_accuracy": round(c / t, 4)}
                for d in DIFFICULTIES
                if d in self.by_difficulty
                for c, t in [self.by_difficulty[d]]
            },
            "reasons": dict(self.reasons.most_common()),
        }


class Evaluator:
    """Judges rows against the database(s) at ``db``; safe to call from several threads."""

    def __init__(
        self, db: str | Path, *, timeout_s: float = 30.0, max_rows: int = 100_000, workers: int = 2
    ) -> None:
        self.source, self.timeout_s, self.max_rows, self.workers = (
            str(db),
            timeout_s,
            max_rows,
            workers,
        )
        self._judges: dict[str | None, ExecutionJudge] = {}

    def judge(self, db_id: str | None) -> ExecutionJudge:
        judge = self._judges.get(db_id)
        if judge is None:
            database = open_database(self.source, db_id, workers=self.workers)
            judge = self._judges.setdefault(
                db_id, ExecutionJudge(database, timeout_s=self.timeout_s, max_rows=self.max_rows)
            )
        return judge

    def verdict(self, row: dict[str, Any]) -> dict[str, Any]:
        judge = self.judge(row.get("db_id"))
        v = judge.judge(row["gold_sql"], row["pred_sql"])
        try:
            difficulty = sqltools.hardness(row["gold_sql"], judge.db.dialect)
        except sqltools.SQLParseError:
            difficulty = "unknown"
        return {
            **row,
            "correct": v.correct,
            "reason": v.reason or "",
            "detail": v.detail,
            "difficulty": difficulty,
        }

    def run(self, rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Verdicts in input order (databases opened before the threads start)."""
        for db_id in dict.fromkeys(r.get("db_id") for r in rows):
            try:
                self.judge(db_id)
            except ConfigError as e:
                raise ConfigError(f"db_id {db_id!r}: {e}") from None
        with ThreadPoolExecutor(self.workers) as pool:
            yield from pool.map(self.verdict, rows)


def evaluate_file(
    db: str | Path,
    input_path: Path,
    output_path: Path,
    *,
    overwrite: bool = False,
    timeout_s: float = 30.0,
    max_rows: int = 100_000,
    workers: int = 2,
) -> Summary:
    """Writes one verdict per input row to ``output_path`` (atomically) and returns the summary."""
    if output_path.resolve() == input_path.resolve():
        raise ConfigError(f"the output {output_path} is the input: choose another file")
    if output_path.exists() and not overwrite:
        raise ConfigError(f"{output_path} exists: choose another file or pass --overwrite")
    rows = read_pairs(input_path)
    evaluator = Evaluator(db, timeout_s=timeout_s, max_rows=max_rows, workers=workers)
    summary = Summary()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".partial"
    )
    try:
        with os.fdopen(fd, "wb") as out:
            for verdict in evaluator.run(rows):
                summary.add(verdict)
                out.write(orjson.dumps(verdict) + b"\n")
        os.replace(tmp, output_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return summary
