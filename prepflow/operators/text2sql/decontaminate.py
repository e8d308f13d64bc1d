"""Decontamination of Text-to-SQL data against a benchmark's questions and SQL."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.operator import FilterOperator, Params
from prepflow.operators.text2sql import sqltools
from prepflow.operators.text2sql._db import SQLGLOT

_TOKEN = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


class SQLDecontaminationFilter(FilterOperator):
    """Drops rows whose question or SQL appears in a benchmark (Spider/BIRD dev or test...).

    A row is contaminated when its SQL equals a benchmark query up to constants, case and
    spacing (sqlglot fingerprint: literals masked, identifiers lower-cased), or its question
    shares an ``ngram``-token sequence with a benchmark question (a question shorter than
    ``ngram`` tokens: when it equals one). The reason names the benchmark item:
    ``sql matches benchmark dev.json:12`` / ``question shares 8 tokens with benchmark dev.json:40``.

    The benchmark is any input prepflow reads (a ``.json`` list of objects such as Spider's
    ``dev.json``, JSONL, Parquet...), read as a side input through the run context, with the
    question in ``question_field`` and the SQL in ``sql_field``; items are numbered from 1.
    """

    domain = "text2sql"
    requires = SQLGLOT
    inputs = (
        Column("question", "string", "the question"),
        Column("sql", "string", "the SQL"),
    )

    class Params(Params):
        benchmark: str = Field(..., description="the benchmark file (.jsonl or .json list)")
        question_field: str = Field("question", description="field of the benchmark question")
        sql_field: str = Field("query", description="field of the benchmark SQL (Spider: query)")
        ngram: int = Field(8, ge=3, description="tokens in a shared question n-gram")
        dialect: str = Field("sqlite", description="sqlglot dialect of both SQL sides")

    def check(self) -> list[str]:
        path = Path(self.params.benchmark)
        if "://" not in self.params.benchmark and not path.exists():
            return [f"{self.name}: parameter 'benchmark': no file {path}"]
        return []

    def setup(self, ctx: Any) -> None:
        """Read the benchmark as a side input (any format prepflow reads: Spider's ``dev.json``
        list, JSONL, Parquet...) and index its SQL fingerprints and question n-grams."""
        fields = (self.params.question_field, self.params.sql_field)
        n, name = self.params.ngram, Path(self.params.benchmark).name
        sql: dict[str, str] = {}
        grams: dict[tuple[str, ...], str] = {}
        short: dict[tuple[str, ...], str] = {}
        i = 0
        for table in ctx.side_input(self.params.benchmark):
            columns = [table.column(f).to_pylist() if f in table.column_names else
                       [None] * table.num_rows for f in fields]  # fmt: skip
            for q, s in zip(*columns, strict=True):
                i += 1
                where = f"{name}:{i}"
                if isinstance(s, str) and s.strip():
                    # a benchmark query sqlglot cannot read cannot match either
                    with contextlib.suppress(sqltools.SQLParseError):
                        sql.setdefault(sqltools.fingerprint(s, self.params.dialect), where)
                if isinstance(q, str):
                    toks = _tokens(q)
                    if len(toks) < n:
                        short.setdefault(tuple(toks), where)
                    for j in range(len(toks) - n + 1):
                        grams.setdefault(tuple(toks[j : j + n]), where)
        if not sql and not grams and not short:
            raise ConfigError(
                f"{self.name}: benchmark {self.params.benchmark} has no {' or '.join(fields)}"
            )
        self._sql, self._grams, self._short = sql, grams, short

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        if getattr(self, "_sql", None) is None:
            raise OperatorContractError(f"{self.name}: setup(ctx) must run before run_batch")
        n = self.params.ngram
        reasons: list[str | None] = []
        for q, s in zip(
            batch.column(self.col("question")).to_pylist(),
            batch.column(self.col("sql")).to_pylist(),
            strict=True,
        ):
            reason = None
            try:
                hit = self._sql.get(sqltools.fingerprint(s or "", self.params.dialect))
            except sqltools.SQLParseError:
                hit = None
            if hit:
                reason = f"sql matches benchmark {hit} (up to constants and case)"
            else:
                toks = _tokens(q or "")
                if len(toks) < n and (hit := self._short.get(tuple(toks))):
                    reason = f"question equals benchmark {hit}"
                for j in range(len(toks) - n + 1):
                    if hit := self._grams.get(tuple(toks[j : j + n])):
                        reason = f"question shares {n} tokens with benchmark {hit}"
                        break
            reasons.append(reason)
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())
