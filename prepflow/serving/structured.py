"""Structured output: a pydantic model or JSON schema that answers must satisfy.

The schema goes to the server as ``response_format`` (grammar-constrained decoding on llama.cpp,
vLLM, SGLang, OpenAI) or, for servers without it, as an instruction in the prompt. Answers are
parsed leniently (code fences, prose around the JSON, trailing commas, single quotes, cut-off
brackets are repaired by json-repair) and then validated strictly; an invalid answer is re-asked
with the validation error so the model can correct itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import json_repair
import orjson
from pydantic import BaseModel, ValidationError

from prepflow.core.errors import ConfigError

MAX_ERROR_CHARS = 600


class InvalidJSON(ValueError):
    """The text holds no JSON value valid for the schema (message says why)."""


@dataclass(frozen=True, eq=False)
class OutputSchema:
    name: str
    json_schema: dict[str, Any]
    _validate: Callable[[Any], Any]

    @staticmethod
    def of(schema: type[BaseModel] | Mapping[str, Any]) -> OutputSchema:
        """Wrap a pydantic model class or a JSON-schema dict (the latter needs ``jsonschema``)."""
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return _of_model(schema)
        if isinstance(schema, Mapping):
            return _of_json_schema(orjson.dumps(dict(schema), option=orjson.OPT_SORT_KEYS))
        raise ConfigError(
            f"schema must be a pydantic model class or a JSON-schema dict, "
            f"not {type(schema).__name__}"
        )

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.json_schema},
        }

    def instruction(self) -> str:
        """Prompt text asking for this schema, for servers without ``response_format``."""
        return (
            "Reply with only a JSON object that matches this JSON schema, with no other text:\n"
            + orjson.dumps(self.json_schema).decode()
        )

    def parse(self, text: str) -> Any:
        """The validated value in ``text``; raises :class:`InvalidJSON` saying what is wrong."""
        value = extract_json(text)
        try:
            return self._validate(value)
        except ValidationError as e:
            raise InvalidJSON(_clip(_pydantic_errors(e))) from None


#: A single backslash that starts a LaTeX command whose first letter is also a JSON escape
#: (``\frac`` would read as form feed + "rac", ``\theta`` as tab + "heta"). Models write LaTeX
#: into JSON strings without doubling the backslash; ``\f`` and ``\b`` before a letter are never
#: meant as form feed or backspace, and the ``\n``/``\r``/``\t`` commands listed are not words
#: that would follow a line break or tab.
_LATEX_IN_JSON = re.compile(
    r"(?<!\\)\\(?=[fb][A-Za-z]|(?:nabla|neq|ne|nu|newline|not|theta|times|textbf|text|tfrac"
    r"|tau|triangle|rho|rightarrow|right|rangle)(?![A-Za-z]))"
)


def protect_latex(text: str) -> str:
    """``text`` (JSON) with the backslash of each LaTeX command doubled, so that parsing keeps
    ``\frac`` and ``\theta`` as written."""
    return _LATEX_IN_JSON.sub(r"\\\\", text)


def extract_json(text: str) -> Any:
    """The JSON value in a model's reply, repairing fences, surrounding prose and minor damage,
    with LaTeX commands kept as written (:func:`protect_latex`)."""
    text = protect_latex(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    value = json_repair.loads(text)
    if value == "" and text.strip() not in ('""', "''"):
        raise InvalidJSON("the reply contains no JSON")
    return value


def reask(messages: list[dict[str, Any]], raw: str, problem: str) -> list[dict[str, Any]]:
    """The conversation extended with the bad answer and a request to fix ``problem``."""
    return [
        *messages,
        {"role": "assistant", "content": raw},
        {"role": "user", "content": f"{problem}\nAnswer again, correcting this."},
    ]


def with_instruction(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    """``messages`` with ``instruction`` appended to the system message (added if none)."""
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        return [
            {**first, "content": f"{first.get('content') or ''}\n\n{instruction}".strip()},
            *messages[1:],
        ]
    return [{"role": "system", "content": instruction}, *messages]


@functools.lru_cache(maxsize=256)
def _of_model(model: type[BaseModel]) -> OutputSchema:
    return OutputSchema(model.__name__, model.model_json_schema(), model.model_validate)


@functools.lru_cache(maxsize=256)
def _of_json_schema(canonical: bytes) -> OutputSchema:
    try:
        import jsonschema
    except ImportError:
        raise ConfigError(
            "a JSON-schema dict as schema needs the 'jsonschema' package "
            "(pip install jsonschema); or give a pydantic model"
        ) from None
    schema = orjson.loads(canonical)
    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ConfigError(f"invalid JSON schema: {e.message}") from None
    validator = validator_cls(schema)

    def validate(value: Any) -> Any:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            raise InvalidJSON(
                _clip(
                    "; ".join(
                        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors
                    )
                )
            )
        return value

    return OutputSchema(str(schema.get("title", "output")), schema, validate)


def _pydantic_errors(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) or '(root)'}: {err['msg']}" for err in e.errors()
    )


def _clip(s: str) -> str:
    return s if len(s) <= MAX_ERROR_CHARS else s[: MAX_ERROR_CHARS - 3] + "..."
