"""Operator base classes: the contract every step of a pipeline follows.

An operator declares its input and output columns, its parameters (a pydantic model) and its
kind, then implements one batch method over an Arrow table:

* :class:`GenerateOperator`, :class:`EvaluateOperator`, :class:`RefineOperator` — ``process(batch)``
  returns the batch with columns added or rewritten;
* :class:`FilterOperator` — ``keep(batch)`` returns a boolean mask (and optionally per-row reasons).

The engine calls :meth:`Operator.run_batch`, which turns those into a :class:`Result` (kept,
dropped-with-reason, failed-with-error rows), so stats and row accounting come free. Operators
that need the whole dataset set ``is_global`` and are *mergeable*: ``summarize(shard)`` gives each
shard's part of the state, ``merge(a, b)`` combines two parts (in any order and grouping),
``finalize(state)`` takes the decisions, and ``run_batch`` applies them shard by shard. That is what
lets one global operator run on one core or spread over a cluster.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import difflib
import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, ValidationError

from prepflow.core.columns import Column, Schema
from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.registry import registry
from prepflow.core.tables import fill_null, set_column

#: Internal lineage column added at ingest: the 0-based index of the source input row. Rows an
#: operator fans out keep their parent's id, so every output row traces back to an input row.
ID = "_id"
REASON = "_reason"
ERROR_TYPE, ERROR, ATTEMPTS, RAW = "_error_type", "_error", "_attempts", "_raw"
#: Side records a step may give beside its rows (``Result.extra``), kept by the run store under
#: ``<kind>/<step>/shard-NNNNN.arrow`` for the dashboard; never part of the data. ``measures``:
#: the values a filter measured for every row it judged (one row per input row, ``_id`` first;
#: schema metadata :data:`MEASURED_RULES` describes the rules), so that a threshold's what-if
#: needs no rerun.
MEASURES = "measures"
#: ``llm_calls``: the LLM calls behind each row of an LLM step (``_id``, the messages sent, the
#: reply, cached or not, tokens, the error when the call gave up): the dashboard's prompts and
#: responses per row. Only what the prompt holds is recorded: no endpoint, header or key.
LLM_CALLS = "llm_calls"
#: Schema metadata key of a ``measures`` table: JSON list of {param, measure, bound, threshold,
#: column} per rule, in the order the filter applies them (bound: ``min`` drops values below the
#: threshold, ``max`` values above it; NaN never fails).
MEASURED_RULES = b"prepflow.rules"


class Kind(StrEnum):
    GENERATE = "generate"
    EVALUATE = "evaluate"
    FILTER = "filter"
    REFINE = "refine"


class Params(BaseModel):
    """Base for operator parameters: typed, defaulted, YAML-serialisable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Requirements:
    """What an operator needs beyond the core install, checked at compile time."""

    llm: bool = False
    embedding: bool = False
    sandbox: bool = False
    packages: tuple[str, ...] = ()  # importable module names, e.g. ("rensa",)
    extra: str | None = None  # the pip extra that provides them, e.g. "text"


@dataclass
class Result:
    """What one batch became: kept rows, dropped rows (with ``_reason``), failed rows (with error)."""

    kept: pa.Table
    dropped: pa.Table | None = None
    failed: pa.Table | None = None
    #: side records by kind (:data:`MEASURES`, :data:`LLM_CALLS`), kept beside the shard
    extra: dict[str, pa.Table] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return 0 if self.dropped is None else self.dropped.num_rows

    @property
    def n_failed(self) -> int:
        return 0 if self.failed is None else self.failed.num_rows


def with_reason(rows: pa.Table, reasons: pa.Array | str) -> pa.Table:
    if isinstance(reasons, str):
        reasons = pa.array([reasons] * rows.num_rows, pa.string())
    return rows.append_column(REASON, reasons.cast(pa.string()))


def failure_rows(
    rows: pa.Table,
    error_type: str | list[str],
    message: str | list[str],
    attempts: int | list[int] = 1,
    raw: str | list[str | None] | None = None,
) -> pa.Table:
    """Annotate ``rows`` as failed; scalar arguments apply to every row."""
    n = rows.num_rows

    def col(v: Any, t: pa.DataType) -> pa.Array:
        return pa.array(v if isinstance(v, list) else [v] * n, t)

    return (
        rows.append_column(ERROR_TYPE, col(error_type, pa.string()))
        .append_column(ERROR, col(message, pa.string()))
        .append_column(ATTEMPTS, col(attempts, pa.int32()))
        .append_column(RAW, col(raw, pa.string()))
    )


#: Runs rows [start, stop) of a batch an operator has seen whole (:meth:`Operator.slice_runner`).
SliceRunner = Callable[[int, int], Awaitable[Result]]

#: Set while a pipeline's ``forward()`` is traced: calling an operator then records a step.
_TRACER: contextvars.ContextVar[Callable[[Operator, dict[str, str]], Any] | None] = (
    contextvars.ContextVar("prepflow_tracer", default=None)
)


@contextlib.contextmanager
def tracing(record: Callable[[Operator, dict[str, str]], Any]) -> Iterator[None]:
    """Within the block, ``op(**bindings)`` calls ``record(op, bindings)`` instead of failing."""
    token = _TRACER.set(record)
    try:
        yield
    finally:
        _TRACER.reset(token)


class Operator:
    """Base of all operators. Subclass one of the four kind classes, not this one."""

    #: Registry name (defaults to the class name). Domain groups operators in the registry.
    name: ClassVar[str]
    kind: ClassVar[Kind]
    domain: ClassVar[str] = "general"
    #: Bump when behaviour changes: it is part of every step fingerprint, so runs recompute.
    version: ClassVar[str] = "1"
    inputs: ClassVar[tuple[Column, ...]] = ()
    outputs: ClassVar[tuple[Column, ...]] = ()
    Params: ClassVar[type[Params]] = Params
    requires: ClassVar[Requirements] = Requirements()
    #: Needs the whole stream (dedup, dataset-level selection): see ``summarize``/``merge``.
    is_global: ClassVar[bool] = False
    #: Implements ``arun_batch`` natively (LLM calls): run on the event loop, never in a pool.
    is_async: ClassVar[bool] = False
    #: Worth a worker process (regex, hashing, models); trivial column ops stay in-process.
    cpu_heavy: ClassVar[bool] = False
    #: A base class for other operators, not one itself: kept out of the registry. Declared on
    #: each class (a subclass that does not say so is a concrete, registered operator).
    abstract: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False
        if cls.abstract:
            return
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if not isinstance(getattr(cls, "kind", None), Kind):
            raise TypeError(f"operator {cls.__name__} must subclass one of the four kind classes")
        registry.register(cls)

    def __init__(self, **params: Any) -> None:
        try:
            self.params = self.Params(**params)
        except ValidationError as e:
            raise ConfigError(_param_errors(self.name, self.Params, e)) from None
        self._bindings: dict[str, str] = {}

    # ---- column binding --------------------------------------------------------------------

    @classmethod
    def columns(cls) -> tuple[Column, ...]:
        return (*cls.inputs, *cls.outputs)

    def bind(self, bindings: Mapping[str, str]) -> Operator:
        """A copy of this operator whose declared columns map to the given dataset columns."""
        known = {c.name: c for c in self.columns()}
        for key in bindings:
            if key not in known:
                raise ConfigError(
                    f"{self.name}: no column named {key!r} to bind; declared: {', '.join(known) or 'none'}"
                )
            if not known[key].configurable and bindings[key] != key:
                raise ConfigError(f"{self.name}: column {key!r} is fixed and cannot be renamed")
        bound = copy.copy(self)
        bound._bindings = dict(bindings)
        return bound

    def col(self, name: str) -> str:
        """The dataset column bound to the operator's declared column ``name``."""
        return self._bindings.get(name, name)

    @property
    def bindings(self) -> dict[str, str]:
        return dict(self._bindings)

    # ---- compile-time contract -------------------------------------------------------------

    def output_schema(self, schema: Schema) -> Schema:
        """The schema after this step. Override when outputs depend on parameters."""
        out = dict(schema)
        for c in self.outputs:
            out[self.col(c.name)] = c.type
        return out

    def required_inputs(self) -> list[Column]:
        """Inputs that must exist at this step (override when they depend on parameters)."""
        return [c for c in self.inputs if not c.optional]

    def check(self) -> list[str]:
        """Problems with the parameters that pydantic cannot express; empty when fine."""
        return []

    def estimate(self, rows: int, sample: list[dict[str, Any]] | None = None) -> dict[str, int]:
        """Estimated LLM requests/tokens for ``rows`` rows, ``sample`` being a few of them as
        dicts (LLM operators override)."""
        return {}

    def fingerprint_extra(self) -> str:
        """Anything besides name, version and params that changes results (e.g. a prompt)."""
        return ""

    def max_rows_out(self, rows_in: int) -> int:
        """The most rows this step can give for ``rows_in`` rows (estimates: a fan-out
        generator overrides it)."""
        return rows_in

    # ---- runtime ---------------------------------------------------------------------------

    @property
    def row_local(self) -> bool:
        """Each row's output depends on that row alone, so any slice of a batch can run on its
        own: the engine then streams an async step's rows to the next one piece by piece."""
        return False

    def slice_runner(self, batch: pa.Table) -> SliceRunner | None:
        """For an async step that is not ``row_local``: given its whole input, a function that
        runs rows ``[start, stop)`` of it on their own, so that each row moves on to the next step
        when it is done although the rows took context from each other. None: the batch runs
        only as a whole."""
        return None

    def setup(self, ctx: Any) -> None:
        """Called once per process before the first batch with the run context
        (:class:`prepflow.core.context.RunContext`): load models, keep the serving client."""

    def teardown(self) -> None:
        """Called when the run ends in this process."""

    # ---- global operators: summarize each shard, merge the parts, finalize, then run --------

    def summarize(self, batch: pa.Table) -> Any:
        """Global operators: this shard's part of the state (fingerprints, signatures, the ids
        it must decide on). A plain picklable value computed from ``batch`` alone, so that
        shards are summarized anywhere, at once, in any order."""
        raise NotImplementedError(f"{self.name} is not a global operator")

    def merge(self, a: Any, b: Any) -> Any:
        """Global operators: two states as one. Associative, and the decisions ``finalize``
        takes do not depend on the order or grouping of merges (ties are broken by stable row
        identity, ``_id``, never by arrival order)."""
        raise NotImplementedError(f"{self.name} is not a global operator")

    def finalize(self, state: Any) -> None:
        """Global operators: take the decisions from the state of every shard merged;
        ``run_batch`` then applies them to each shard."""
        raise NotImplementedError(f"{self.name} is not a global operator")

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Summarize, merge (in order) and finalize over ``batches``: the whole global protocol
        in one process (tests, notebooks)."""
        self.finalize(functools.reduce(self.merge, map(self.summarize, batches)))

    def run_batch(self, batch: pa.Table) -> Result:
        raise NotImplementedError

    async def arun_batch(self, batch: pa.Table) -> Result:
        return self.run_batch(batch)

    def __call__(self, **bindings: str) -> Any:
        """Inside ``Pipeline.forward``: add this operator as a step with these column bindings."""
        record = _TRACER.get()
        if record is None:
            raise ConfigError(
                f"{self.name}: operators are called inside Pipeline.forward(); "
                "to process data run the pipeline"
            )
        return record(self, dict(bindings))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{self.name}({params})"


class _MapOperator(Operator):
    """Shared ``run_batch`` for kinds whose batch method returns the rewritten batch."""

    abstract = True

    def process(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def run_batch(self, batch: pa.Table) -> Result:
        out = self.process(batch)
        if self.kind is not Kind.GENERATE and out.num_rows != batch.num_rows:
            raise OperatorContractError(
                f"{self.name} ({self.kind}) returned {out.num_rows} rows for {batch.num_rows}"
            )
        return Result(kept=out)


class GenerateOperator(_MapOperator):
    """Adds new columns, or new rows (fan-out keeps the parent's ``_id``)."""

    abstract = True
    kind = Kind.GENERATE


class EvaluateOperator(_MapOperator):
    """Adds score or label columns; never drops a row."""

    abstract = True
    kind = Kind.EVALUATE


class RefineOperator(_MapOperator):
    """Rewrites existing columns in place."""

    abstract = True
    kind = Kind.REFINE


class FilterOperator(Operator):
    """Drops rows, recording a reason for each.

    Implement ``keep(batch)`` returning a boolean array (``True`` keeps the row), or a pair
    ``(mask, reasons)`` where ``reasons`` is a string array giving each dropped row's reason.
    Without per-row reasons, :meth:`reason` is used for every dropped row. A threshold filter may
    return a triple ``(mask, reasons, measures)``: ``measures`` holds the measured values of
    every row (see :data:`MEASURES`), kept beside the run for threshold what-ifs.
    """

    abstract = True
    kind = Kind.FILTER

    def keep(self, batch: pa.Table) -> pa.Array | tuple[pa.Array, pa.Array]:
        raise NotImplementedError

    def reason(self) -> str:
        """Reason recorded for dropped rows when ``keep`` gives none per row."""
        params = ", ".join(f"{k}={v}" for k, v in self.params.model_dump().items())
        return f"{self.name}({params})"

    def run_batch(self, batch: pa.Table) -> Result:
        verdict = self.keep(batch)
        mask, reasons, measures = (
            (*verdict, None)[:3] if isinstance(verdict, tuple) else (verdict, None, None)
        )
        extra = {} if measures is None else {MEASURES: self._measures(batch, measures)}
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        if len(mask) != batch.num_rows:
            raise OperatorContractError(
                f"{self.name}.keep returned {len(mask)} flags for {batch.num_rows} rows"
            )
        mask = fill_null(mask, False)
        drop = pc.invert(mask)
        if not pc.any(drop).as_py():
            return Result(kept=batch, extra=extra)
        dropped = batch.filter(drop)
        why = pc.filter(reasons, drop) if reasons is not None else self.reason()
        return Result(kept=batch.filter(mask), dropped=with_reason(dropped, why), extra=extra)

    def _measures(self, batch: pa.Table, measures: pa.Table) -> pa.Table:
        if measures.num_rows != batch.num_rows:
            raise OperatorContractError(
                f"{self.name}.keep measured {measures.num_rows} rows of {batch.num_rows}"
            )
        return measures.add_column(0, ID, batch[ID]) if ID in batch.column_names else measures


class RowMixin:
    """Row-wise helper for simple operators: implement ``process_row(row) -> dict of new values``.

    Convenient but slow (Python per row); hot operators should work on whole columns.
    """

    def process_row(self, row: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def process(self, batch: pa.Table) -> pa.Table:
        updates = [self.process_row(r) for r in batch.to_pylist()]
        if not updates:
            return batch
        for key in updates[0]:
            batch = set_column(batch, key, pa.array([u[key] for u in updates]))
        return batch


@dataclass
class StepStats:
    """What one step did to its rows: the one stats type from an operator's batch, through the
    run journal, to the report (``kept`` is derived: the files prove it, see the accounting
    tests)."""

    rows_in: int = 0
    rows_out: int = 0
    dropped: int = 0
    failed: int = 0
    quarantined: int = 0  # malformed input records set aside (the input step only)
    seconds: float = 0.0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        """Input rows that passed (for fan-out steps ``rows_out`` may differ)."""
        return self.rows_in - self.dropped - self.failed - self.quarantined

    def add(self, other: StepStats) -> None:
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.dropped += other.dropped
        self.failed += other.failed
        self.quarantined += other.quarantined
        self.seconds += other.seconds
        for src, dst in ((other.drop_reasons, self.drop_reasons), (other.errors, self.errors)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "kept": self.kept,
            "dropped": self.dropped,
            "failed": self.failed,
            "quarantined": self.quarantined,
            "rows_out": self.rows_out,
            "seconds": round(self.seconds, 4),
            "drop_reasons": self.drop_reasons,
            "errors": self.errors,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StepStats:
        return cls(
            rows_in=d["rows_in"],
            rows_out=d["rows_out"],
            dropped=d["dropped"],
            failed=d["failed"],
            quarantined=d.get("quarantined", 0),
            seconds=d["seconds"],
            drop_reasons=dict(d.get("drop_reasons", {})),
            errors=dict(d.get("errors", {})),
        )


def _param_errors(op: str, params: type[Params], e: ValidationError) -> str:
    """One line per problem: the parameter, what is wrong, what was expected, close names."""
    parts = []
    fields = params.model_fields
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(params)"
        name = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, list(fields), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            parts.append(
                f"{op}: unknown parameter {name!r}{hint} "
                f"(parameters: {', '.join(fields) or 'none'})"
            )
            continue
        expected = (
            f", expected {_type_name(fields[name].annotation)}"
            if name in fields and err["type"] != "missing"
            else ""
        )
        got = f" (got {err['input']!r})" if err["type"] != "missing" and "input" in err else ""
        parts.append(f"{op}: parameter {loc!r}: {err['msg']}{expected}{got}")
    return "; ".join(parts)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
