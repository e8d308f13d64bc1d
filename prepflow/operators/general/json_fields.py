"""Pull typed fields out of a JSON text column (e.g. an LLM's structured answer)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
import pyarrow as pa
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from prepflow.core.columns import Column, Schema, to_arrow
from prepflow.core.errors import ConfigError
from prepflow.core.operator import GenerateOperator, Params, Result, failure_rows
from prepflow.core.tables import set_column

FieldType = Literal[
    "string", "int", "float", "bool", "list<string>", "list<int>", "list<float>", "list<bool>"
]
_PYTHON = {
    "int": int,
    "float": float,
    "bool": bool,
    "list<string>": list[str],
    "list<int>": list[int],
    "list<float>": list[float],
    "list<bool>": list[bool],
}


_EXACT = {"string": str, "int": int, "float": float, "bool": bool}


class _Missing(Exception):
    """A path that does not lead to a value."""


#: a parsed path: each segment as a dict key, and as a list index when it is an integer
Path = tuple[tuple[str, int | None], ...]


def parse_path(path: str) -> Path:
    """``"choices.0.text"`` -> ``(("choices", None), ("0", 0), ("text", None))``."""
    parts = path.split(".")
    if not path or any(p == "" for p in parts):
        raise ValueError(f"path {path!r} has an empty segment")
    return tuple((p, int(p) if p.lstrip("-").isdigit() else None) for p in parts)


def lookup(doc: Any, path: Path) -> Any:
    """The value at ``path``; raises _Missing saying where the path stops."""
    value = doc
    for depth, (key, index) in enumerate(path):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and index is not None and -len(value) <= index < len(value):
            value = value[index]
        else:
            raise _Missing(_why_missing(value, path, depth))
    if value is None:
        raise _Missing("value is null")
    return value


def _why_missing(value: Any, path: Path, depth: int) -> str:
    where = ".".join(k for k, _ in path[:depth]) or "the document"
    key, index = path[depth]
    if isinstance(value, dict):
        return f"{where} has no key {key!r}"
    if isinstance(value, list):
        if index is None:
            return f"{where} is a list, not an object with key {key!r}"
        return f"{where} has no index {index} (length {len(value)})"
    kind = {type(None): "null", str: "a string", bool: "a boolean"}.get(type(value), "a number")
    return f"{where} is {kind}, cannot look up {key!r}"


class _Field:
    """One output column: where its value is and how it is converted."""

    def __init__(self, out: str, path_text: str, type_name: str) -> None:
        self.out, self.path_text, self.path = out, path_text, parse_path(path_text)
        self.type = type_name
        self._exact = _EXACT.get(type_name)
        self._adapter = TypeAdapter(_PYTHON[type_name]) if type_name in _PYTHON else None

    def convert(self, value: Any) -> Any:
        if type(value) is self._exact:  # already right: skip validation (and a bool is no int)
            return value
        if self._adapter is None:  # string: JSON strings as they are, anything else as JSON text
            return orjson.dumps(value).decode()
        return self._adapter.validate_python(value)


class ExtractJsonFields(GenerateOperator):
    """Parse a JSON text column and copy chosen fields into new typed columns.

    ``fields`` maps each output column to a dotted path into the parsed document; digit
    segments index lists, e.g. ``{"answer": "answer.value", "first": "choices.0.text"}``.
    Values are converted to the field's type from ``types`` (default ``string``) with pydantic's
    lax rules, so an LLM's ``"42"`` becomes the int 42; a ``string`` field takes JSON strings as
    they are and stores any other value as compact JSON text.

    Rows never get a silent null: a row whose JSON does not parse, whose value cannot be
    converted, or that lacks a field (missing key, index out of range, null value, null input)
    becomes a failed row with the error (``JSONDecodeError``, ``FieldTypeError`` or
    ``MissingField``) and its raw text. With ``on_missing: null`` a missing field gives null
    instead; unparseable JSON and wrong types still fail.
    """

    inputs = (Column("json", "string", "JSON text to parse"),)

    class Params(Params):
        fields: dict[str, str] = Field(
            ..., min_length=1, description="output column -> dotted JSON path (e.g. answer.value)"
        )
        types: dict[str, FieldType] = Field(
            {}, description="output column -> type (default string)"
        )
        on_missing: Literal["fail", "null"] = Field(
            "fail", description="a missing field fails the row ('fail') or gives null ('null')"
        )

        @field_validator("fields")
        @classmethod
        def _paths(cls, v: dict[str, str]) -> dict[str, str]:
            for path in v.values():
                parse_path(path)
            return v

        @model_validator(mode="after")
        def _typed_fields_exist(self) -> ExtractJsonFields.Params:
            unknown = sorted(set(self.types) - set(self.fields))
            if unknown:
                raise ValueError(f"types given for unknown field(s): {', '.join(unknown)}")
            return self

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        types = self.params.types
        self._fields = [
            _Field(out, path, types.get(out, "string")) for out, path in self.params.fields.items()
        ]

    def output_schema(self, schema: Schema) -> Schema:
        return dict(schema) | {f.out: f.type for f in self._fields}

    def _extract(self, text: str | None) -> tuple[list[Any], str | None, str | None]:
        """(values, error type, message) for one row; the error is None when it succeeded."""
        values: list[Any] = [None] * len(self._fields)
        if text is None:
            if self.params.on_missing == "null":
                return values, None, None
            return values, "MissingField", f"column {self.col('json')!r} is null"
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            return values, "JSONDecodeError", f"invalid JSON: {e}"
        errors: list[tuple[str, str]] = []
        for i, f in enumerate(self._fields):
            try:
                values[i] = f.convert(lookup(doc, f.path))
            except _Missing as e:
                if self.params.on_missing == "fail":
                    errors.append(("MissingField", f"field {f.out!r} ({f.path_text}): {e}"))
            except ValidationError as e:
                msg = e.errors()[0]["msg"]
                errors.append(("FieldTypeError", f"field {f.out!r} ({f.path_text}): {msg}"))
        if errors:
            return values, errors[0][0], "; ".join(msg for _, msg in errors)
        return values, None, None

    def run_batch(self, batch: pa.Table) -> Result:
        source = self.col("json")
        if source not in batch.column_names:
            raise ConfigError(f"{self.name}: no column {source!r} in the data")
        texts = batch.column(source)
        if not (
            pa.types.is_string(texts.type)
            or pa.types.is_large_string(texts.type)
            or pa.types.is_null(texts.type)
        ):
            raise ConfigError(f"{self.name}: column {source!r} holds {texts.type}, not JSON text")
        raw = texts.to_pylist()
        ok: list[int] = []
        columns: list[list[Any]] = [[] for _ in self._fields]
        bad: list[int] = []
        kinds: list[str] = []
        messages: list[str] = []
        for i, text in enumerate(raw):
            values, kind, message = self._extract(text)
            if kind is None:
                ok.append(i)
                for column, v in zip(columns, values, strict=True):
                    column.append(v)
            else:
                bad.append(i)
                kinds.append(kind)
                messages.append(message)
        kept = batch.take(pa.array(ok, pa.int64()))
        for f, values in zip(self._fields, columns, strict=True):
            kept = set_column(kept, f.out, pa.array(values, to_arrow(f.type)))
        failed = None
        if bad:
            failed = failure_rows(
                batch.take(pa.array(bad, pa.int64())), kinds, messages, raw=[raw[i] for i in bad]
            )
        return Result(kept=kept, failed=failed)
