"""Operators used by engine tests; importable by worker processes (pipelines list this file
under `imports:`)."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core import Column, FilterOperator, GenerateOperator, Params, RefineOperator


class TUpper(RefineOperator):
    """Upper-case a text column."""

    domain = "test"
    inputs = (Column("text", "string"),)
    outputs = (Column("text", "string"),)

    def process(self, batch: pa.Table) -> pa.Table:
        c = self.col("text")
        return batch.set_column(batch.column_names.index(c), c, pc.utf8_upper(batch[c]))


class TLength(GenerateOperator):
    """Add the character length of a text column; optionally sleep per batch (kill tests)."""

    domain = "test"
    cpu_heavy = True
    inputs = (Column("text", "string"),)
    outputs = (Column("length", "int"),)

    class Params(Params):
        sleep_s: float = Field(0.0, description="seconds to sleep per batch")

    def process(self, batch: pa.Table) -> pa.Table:
        if self.params.sleep_s:
            time.sleep(self.params.sleep_s)
        return batch.append_column(
            self.col("length"), pc.utf8_length(batch[self.col("text")]).cast(pa.int64())
        )


class TMinLength(FilterOperator):
    """Keep rows whose length column is at least `min`."""

    domain = "test"
    inputs = (Column("length", "int"),)

    class Params(Params):
        min: int = Field(10, description="minimum length")

    def keep(self, batch: pa.Table):
        lengths = batch[self.col("length")]
        mask = pc.greater_equal(lengths, self.params.min)
        reasons = pc.binary_join_element_wise(
            "length=", pc.cast(lengths, pa.string()), f" < {self.params.min}", ""
        )
        return mask, reasons


class TFlaky(RefineOperator):
    """Raise on rows whose text contains `bad` (failure-isolation tests); also records the pid."""

    domain = "test"
    inputs = (Column("text", "string"),)
    outputs = (Column("text", "string"),)

    class Params(Params):
        bad: str = Field("BOOM", description="substring that makes a row fail")

    def process(self, batch: pa.Table) -> pa.Table:
        if pc.any(pc.match_substring(batch[self.col("text")], self.params.bad)).as_py():
            raise ValueError(f"row contains {self.params.bad!r}")
        return batch


class TPid(GenerateOperator):
    """Record the worker's pid (to see which process ran a step)."""

    domain = "test"
    cpu_heavy = True
    outputs = (Column("pid", "int"),)

    def process(self, batch: pa.Table) -> pa.Table:
        return batch.append_column(
            self.col("pid"), pa.array([os.getpid()] * batch.num_rows, pa.int64())
        )


class TNeedsModel(RefineOperator):
    """A refiner whose set-up loads a model file (``model``), as language ID or a perplexity
    filter does: a missing file fails the set-up."""

    domain = "test"
    inputs = (Column("text", "string"),)
    outputs = (Column("text", "string"),)

    class Params(Params):
        model: str = Field(description="path of the model file set-up reads")

    def setup(self, ctx) -> None:
        with open(self.params.model, "rb") as f:
            self._model = f.read()

    def process(self, batch: pa.Table) -> pa.Table:
        return batch


class TTracedGlobal(FilterOperator):
    """A global filter that keeps every row and writes, at finalize, the shards its merged state
    holds and how many ``summarize`` calls ran at once (``global_trace.json`` in its scratch
    directory)."""

    domain = "test"
    is_global = True

    class Params(Params):
        sleep_s: float = Field(0.05, description="seconds each summarize takes (first: 3x)")

    def setup(self, ctx) -> None:
        import threading

        self._trace = ctx.scratch_dir / "global_trace.json"
        self._lock = threading.Lock()
        self._running = 0
        self._most = 0

    def summarize(self, batch: pa.Table) -> list[int]:
        first = batch.column("_id")[0].as_py()
        with self._lock:
            self._running += 1
            self._most = max(self._most, self._running)
        time.sleep(self.params.sleep_s * (3 if first == 0 else 1))  # the first finishes last
        with self._lock:
            self._running -= 1
        return [first]

    def merge(self, a: list[int], b: list[int]) -> list[int]:
        return a + b

    def finalize(self, state: list[int]) -> None:
        import json

        self._trace.write_text(json.dumps({"merged": sorted(state), "most": self._most}))

    def keep(self, batch: pa.Table):
        return pa.repeat(pa.scalar(True), batch.num_rows)
