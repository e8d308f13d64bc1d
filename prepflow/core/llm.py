"""LLM operators: implement ``prompt(row)`` and ``parse(row, response)``; the engine does the rest.

The engine calls ``setup(ctx)`` once (``ctx.serving`` is the run's
:class:`~prepflow.core.context.Serving`) and then awaits ``arun_batch`` for several batches
at once, so requests stay in flight across batches while the serving layer batches, caches,
retries and accounts. Every row ends as a result, a drop with a reason (filters), or a failure
record (error type, message, attempts, raw answer): nothing is lost and nothing is silently null.

This module knows the serving layer only by its protocol (:mod:`prepflow.core.context`).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import keyword
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
import pyarrow as pa
from pydantic import BaseModel, Field, create_model

from prepflow.core.columns import Column, Schema, to_arrow, validate_type_name
from prepflow.core.context import ChatResponse
from prepflow.core.errors import (
    BudgetExceeded,
    ConfigError,
    OperatorContractError,
    PrepflowError,
)
from prepflow.core.operator import (
    ID,
    LLM_CALLS,
    Kind,
    Operator,
    Params,
    Requirements,
    Result,
    SliceRunner,
    failure_rows,
    with_reason,
)
from prepflow.core.prompts import PromptTemplate
from prepflow.core.tables import set_column, take_rows


class LLMParams(Params):
    """Parameters every LLM operator has (subclass this for an operator's own ``Params``)."""

    prompt: str | None = Field(
        None,
        description="Jinja2 template of the user message, replacing the operator's default; "
        "the row's columns and the operator's parameters are its variables",
    )
    system_prompt: str | None = Field(
        None, description="Jinja2 template of the system message, replacing the default"
    )
    generation: dict[str, Any] = Field(
        default_factory=dict,
        description="generation parameters for this step (temperature, "
        "max_tokens, seed...), over the serving defaults",
    )


_LLM_PARAMS = frozenset(LLMParams.model_fields)

#: The calls made for the row being answered: set per row by ``LLMOperator._outcome``, added to
#: by ``LLMOperator.chat`` (a row's requests, gathered or not, run in tasks that share it).
_ROW_CALLS: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "prepflow_row_calls", default=None
)
#: One row per call in a step's ``llm_calls`` side record (see ``prepflow.core.operator``).
CALLS_SCHEMA = pa.schema(
    [
        (ID, pa.int64()),
        ("call", pa.int32()),
        ("messages", pa.string()),  # JSON
        ("reply", pa.string()),
        ("cached", pa.bool_()),
        ("attempts", pa.int32()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("error", pa.string()),
    ]
)


class RowFailed(PrepflowError):
    """One row could not be processed; carries the fields of its failure record."""

    def __init__(
        self, error_type: str, message: str, *, attempts: int = 0, raw: str | None = None
    ) -> None:
        super().__init__(message)
        self.error_type, self.attempts, self.raw = error_type, attempts, raw


class LLMOperator(Operator):
    """Base of operators that ask an LLM once (or a few times) per row.

    Subclasses set ``kind`` (default generate), ``inputs``/``outputs``, a default ``template``
    (or override :meth:`prompt`), optionally a pydantic ``schema`` for structured output (its
    validated instance is ``response.parsed``), and implement :meth:`parse`, which returns:

    * generate / evaluate / refine: a dict of output values keyed by declared output name;
      a generate operator may return a list of dicts, one output row each (fan-out rows keep the
      parent's ``_id``);
    * filter: ``(keep, reason)``; the reason is recorded for a dropped row.

    Rows are dicts keyed by dataset column names: read a declared input as
    ``row[self.col("question")]``. A missing or ``None`` value, an exception in ``prompt`` or
    ``parse``, or a serving error makes the row a failure record, never a null.
    """

    abstract = True
    kind: ClassVar[Kind] = Kind.GENERATE
    is_async = True
    requires = Requirements(llm=True)
    Params: ClassVar[type[Params]] = LLMParams
    #: The default prompt; YAML ``prompt``/``system_prompt`` parameters replace its parts.
    template: ClassVar[PromptTemplate | None] = None
    #: Structured output: answers must validate against this model (instances may set their own).
    schema: type[BaseModel] | None = None
    #: Template variables supplied at render time by the operator itself (not columns).
    template_variables: ClassVar[tuple[str, ...]] = ()
    #: Most tokens one answer may take when neither the step's nor the serving's ``generation``
    #: sets ``max_tokens``: set it where the answer has a known size (a verdict, a label), since
    #: a small model can otherwise loop inside a JSON string until its context is full.
    max_tokens: ClassVar[int | None] = None
    #: The embedded catalog model to run this operator with when the pipeline launches the
    #: embedded default (backend ``llamacpp`` and no ``serving.model`` or ``--model``): the
    #: engine then starts that model's server for this step beside the run's. None: the run's.
    #: A model the user names always wins.
    preferred_embedded_model: ClassVar[str | None] = None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        try:
            base = type(self).template
            if base is not None:
                self.prompt_template: PromptTemplate | None = base.override(
                    p.prompt, p.system_prompt
                )
            elif p.prompt is not None:
                self.prompt_template = PromptTemplate(p.prompt, p.system_prompt)
            else:
                self.prompt_template = None
            if self.prompt_template is not None:
                self.prompt_template.check()
        except ConfigError as e:
            raise ConfigError(f"{self.name}: {e}") from None
        self._param_context = {k: v for k, v in p.model_dump().items() if k not in _LLM_PARAMS}
        self._serving: Any = None

    # ---- what subclasses implement ---------------------------------------------------------

    def prompt(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """Chat messages for one row (default: the template rendered with :meth:`context`)."""
        if self.prompt_template is None:
            raise ConfigError(f"{self.name}: no prompt: set the 'prompt' parameter")
        return self.prompt_template.messages(**self.context(row))

    def parse(self, row: dict[str, Any], response: ChatResponse) -> Any:
        """Output values for one row from the answer (see the class docstring for the shape)."""
        raise NotImplementedError

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        """Template variables: the operator's parameters, then the row's non-null columns, then
        declared inputs under their declared names (so a template works whatever columns they
        bind to). A null is left out, so a template that reads it fails instead of saying "None"."""
        ctx = {**self._param_context, **{k: v for k, v in row.items() if v is not None}}
        for c in self.inputs:
            if row.get(col := self.col(c.name)) is not None:
                ctx[c.name] = row[col]
        return ctx

    def output_columns(self) -> tuple[Column, ...]:
        """Columns :meth:`parse` fills (override when they depend on parameters)."""
        return self.outputs

    @property
    def requests_per_row(self) -> int:
        return 1

    async def arun_row(self, row: dict[str, Any]) -> Any:
        """One row's value as :meth:`checked_parse` returns it: by default one :meth:`chat` with
        :meth:`prompt`, then parse. Override for several requests per row."""
        return self.checked_parse(row, await self.chat(self.prompt(row)))

    # ---- helpers for arun_row overrides ----------------------------------------------------

    async def chat(self, messages: list[dict[str, Any]], **generation: Any) -> ChatResponse:
        """Ask the model with this step's schema and generation parameters."""
        params = {**self.params.generation, **generation}
        if "max_tokens" not in params and "max_tokens" not in self._serving.generation:
            params["max_tokens"] = self.max_tokens
        calls = _ROW_CALLS.get()
        try:
            response = await self._serving.chat(messages, schema=self.schema, **params)
        except Exception as e:
            if calls is not None:
                calls.append(_call(messages, getattr(e, "raw", None), error=e))
            raise
        if calls is not None:
            calls.append(_call(messages, response.text, response=response))
        return response

    def checked_parse(self, row: dict[str, Any], response: ChatResponse) -> Any:
        """:meth:`parse` plus shape and type checks; problems become :class:`RowFailed` (and
        the unusable answer leaves the cache, so ``prepflow retry`` asks again)."""
        try:
            return self.check_output(self.parse(row, response))
        except Exception as e:
            self._serving.forget(response)
            raise RowFailed(
                "ParseError",
                f"{type(e).__name__}: {e}",
                attempts=response.attempts,
                raw=response.text,
            ) from e

    # ---- compile-time contract -------------------------------------------------------------

    def required_inputs(self) -> list[Column]:
        """Declared non-optional inputs plus every column the prompt template reads."""
        required = {c.name: c for c in super().required_inputs()}
        if self.prompt_template is not None:
            declared = {c.name: c for c in self.inputs}
            own = {*self._param_context, *self.template_variables}
            for name in sorted(self.prompt_template.variables() - own):
                column = declared.get(name) or Column(name, "any", "read by the prompt")
                required.setdefault(name, dataclasses.replace(column, optional=False))
        return list(required.values())

    def output_schema(self, schema: Schema) -> Schema:
        out = dict(schema)
        for c in self.output_columns():
            out[self.col(c.name)] = c.type
        return out

    def check(self) -> list[str]:
        if self.prompt_template is None and type(self).prompt is LLMOperator.prompt:
            return [f"{self.name}: parameter 'prompt' is required"]
        return []

    def fingerprint_extra(self) -> str:
        return orjson.dumps(
            {
                "prompt": self.prompt_template.fingerprint() if self.prompt_template else None,
                "schema": self.schema.model_json_schema() if self.schema else None,
                "max_tokens": self.max_tokens,
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()

    def estimate(self, rows: int, sample: list[dict[str, Any]] | None = None) -> dict[str, int]:
        """Requests and prompt tokens (about 4 characters a token) for ``rows`` rows: from the
        prompts of ``sample`` rows when they render (``prompt_tokens``), else from the template
        text alone (``prompt_tokens_min``, row text comes on top); and, when ``max_tokens`` is set
        for the step or by the operator, the most completion tokens."""
        requests = rows * self.requests_per_row
        out = {"requests": requests}
        rendered = []
        for row in sample or []:
            try:
                rendered.append(sum(len(m["content"]) for m in self.prompt(row)))
            except Exception:  # a column this step reads is made by an earlier step
                continue
        if rendered:
            out["prompt_tokens"] = requests * (sum(rendered) // len(rendered) // 4)
        elif self.prompt_template is not None:
            text = self.prompt_template.user + (self.prompt_template.system or "")
            out["prompt_tokens_min"] = requests * (len(text) // 4)
        if max_tokens := self.params.generation.get("max_tokens", self.max_tokens):
            out["completion_tokens_max"] = requests * int(max_tokens)
        return out

    # ---- runtime ---------------------------------------------------------------------------

    def setup(self, ctx: Any) -> None:
        self._serving = ctx.serving

    def run_batch(self, batch: pa.Table) -> Result:
        raise OperatorContractError(
            f"{self.name} is async: await arun_batch (tests can use prepflow.testing.run_operator)"
        )

    async def arun_batch(self, batch: pa.Table) -> Result:
        return await self._arun_rows(batch, self.batch_rows(batch))

    def slice_runner(self, batch: pa.Table) -> SliceRunner:
        rows = self.batch_rows(batch)
        return lambda start, stop: self._arun_rows(
            batch.slice(start, stop - start), rows[start:stop]
        )

    async def _arun_rows(self, batch: pa.Table, rows: list[dict[str, Any]]) -> Result:
        """``batch``'s result, from ``rows``: its rows as :meth:`batch_rows` gave them."""
        if self._serving is None:
            raise OperatorContractError(f"{self.name}: setup(ctx) must run before arun_batch")
        done = await asyncio.gather(*(self._outcome(row) for row in rows))
        result = self._result(batch, [outcome for outcome, _ in done])
        if ID in batch.column_names and any(calls for _, calls in done):
            result.extra[LLM_CALLS] = _calls_table(batch[ID].to_pylist(), [c for _, c in done])
        return result

    @property
    def row_local(self) -> bool:
        """True unless :meth:`batch_rows` is overridden to give rows context from each other."""
        return type(self).batch_rows is LLMOperator.batch_rows

    def batch_rows(self, batch: pa.Table) -> list[dict[str, Any]]:
        """The rows handed to :meth:`arun_row`, one per batch row in order (override to give a
        row context from its neighbours)."""
        return batch.to_pylist()

    async def _outcome(self, row: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        """The row's value (or :class:`RowFailed`), and the calls made for it."""
        calls: list[dict[str, Any]] = []
        token = _ROW_CALLS.set(calls)
        try:
            return await self.arun_row(row), calls
        except BudgetExceeded:
            raise  # the run stops; the row is neither done nor failed
        except Exception as e:
            failed = RowFailed(
                getattr(e, "error_type", None) or type(e).__name__,
                str(e),
                attempts=getattr(e, "attempts", 0),
                raw=getattr(e, "raw", None),
            )
            return failed, calls
        finally:
            _ROW_CALLS.reset(token)

    def check_output(self, value: Any) -> Any:
        """A :meth:`parse`-shaped value checked against the declared outputs (for
        :meth:`arun_row` overrides that build it without :meth:`checked_parse`)."""
        if self.kind is Kind.FILTER:
            if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool)):
                raise TypeError(
                    f"a filter's parse must return (keep: bool, reason: str), got {value!r}"
                )
            return value[0], str(value[1])
        rows = value if isinstance(value, list) and self.kind is Kind.GENERATE else [value]
        if not rows:
            raise ValueError("parse returned no rows")
        columns = {c.name: c for c in self.output_columns()}
        for r in rows:
            if not isinstance(r, Mapping):
                raise TypeError(
                    f"parse must return a dict of output values, got {type(r).__name__}"
                )
            if unknown := set(r) - set(columns):
                raise ValueError(
                    f"unknown output(s) {sorted(unknown)}; declared: {sorted(columns)}"
                )
            for name, c in columns.items():
                if r.get(name) is None:
                    raise ValueError(f"no value for output {name!r}")
                if (t := to_arrow(c.type)) is not None:
                    try:
                        pa.scalar(r[name], type=t)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
                        raise TypeError(f"output {name!r} is not {c.type}: {r[name]!r}") from e
        return rows

    def _result(self, batch: pa.Table, outcomes: list[Any]) -> Result:
        failed = [i for i, o in enumerate(outcomes) if isinstance(o, RowFailed)]
        failures = None
        if failed:
            errors = [outcomes[i] for i in failed]
            failures = failure_rows(
                take_rows(batch, failed),
                [e.error_type for e in errors],
                [str(e) for e in errors],
                [e.attempts for e in errors],
                [e.raw for e in errors],
            )
        ok = [i for i, o in enumerate(outcomes) if not isinstance(o, RowFailed)]
        if self.kind is Kind.FILTER:
            keep = [i for i in ok if outcomes[i][0]]
            drop = [i for i in ok if not outcomes[i][0]]
            dropped = (
                with_reason(
                    take_rows(batch, drop), pa.array([outcomes[i][1] for i in drop], pa.string())
                )
                if drop
                else None
            )
            return Result(kept=take_rows(batch, keep), dropped=dropped, failed=failures)
        take = [i for i in ok for _ in outcomes[i]]
        kept = take_rows(batch, take)
        children = [r for i in ok for r in outcomes[i]]
        for c in self.output_columns():
            values = pa.array([r[c.name] for r in children], type=to_arrow(c.type))
            kept = set_column(kept, self.col(c.name), values)
        return Result(kept=kept, failed=failures)


def _call(
    messages: list[dict[str, Any]],
    reply: str | None,
    *,
    response: ChatResponse | None = None,
    error: Exception | None = None,
) -> dict[str, Any]:
    """One row of :data:`CALLS_SCHEMA` (without ``_id`` and ``call``)."""
    return {
        "messages": orjson.dumps(messages, default=str).decode(),
        "reply": reply,
        "cached": bool(response is not None and response.cached),
        "attempts": response.attempts if response is not None else getattr(error, "attempts", 0),
        "prompt_tokens": response.prompt_tokens if response is not None else 0,
        "completion_tokens": response.completion_tokens if response is not None else 0,
        "error": None if error is None else f"{type(error).__name__}: {error}",
    }


def _calls_table(ids: list[int], calls: list[list[dict[str, Any]]]) -> pa.Table:
    rows = [
        {ID: row_id, "call": k, **call}
        for row_id, row_calls in zip(ids, calls, strict=True)
        for k, call in enumerate(row_calls)
    ]
    return pa.Table.from_pylist(rows, schema=CALLS_SCHEMA)


def reply_text(text: str) -> str:
    """The reply without surrounding whitespace or a wrapping code fence; empty is an error."""
    text = text.strip()
    if text.startswith("```") and text.endswith("```") and "\n" in text:
        text = text[text.index("\n") + 1 : -3].strip()
    if not text:
        raise ValueError("empty reply")
    return text


def python_type(type_name: str) -> Any:
    """The Python type for a declared column type (``list<int>`` -> ``list[int]``)."""
    validate_type_name(type_name)
    if type_name.startswith("list<"):
        return list[python_type(type_name[5:-1])]
    return {
        "string": str,
        "int": int,
        "float": float,
        "bool": bool,
        "struct": dict[str, Any],
        "any": Any,
    }[type_name]


def fields_model(name: str, fields: Mapping[str, str]) -> type[BaseModel]:
    """A pydantic model with one required field per ``{field: column type}`` (YAML schemas)."""
    if not fields:
        raise ConfigError(f"{name}: 'fields' is empty")
    spec: dict[str, Any] = {}
    for field, type_name in fields.items():
        if not field.isidentifier() or keyword.iskeyword(field) or field.startswith("_"):
            raise ConfigError(
                f"{name}: field name {field!r} must be an identifier not starting with _"
            )
        try:
            spec[field] = (python_type(type_name), ...)
        except ValueError as e:
            raise ConfigError(f"{name}: field {field!r}: {e}") from None
    return create_model(name, **spec)
