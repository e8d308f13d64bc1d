"""Column declarations: what an operator reads and writes, and how types are checked.

Types are small strings so they read the same in Python, YAML and the registry:
``string``, ``int``, ``float``, ``bool``, ``list<T>``, ``struct``, ``any``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TYPE_NAMES = ("string", "int", "float", "bool", "struct", "any")


@dataclass(frozen=True)
class Column:
    """A column an operator reads (input) or writes (output).

    ``name`` is the operator's own name for the column; a pipeline may bind it to another dataset
    column unless ``configurable`` is false. ``optional`` inputs may be absent from the data.
    """

    name: str
    type: str = "any"
    description: str = ""
    configurable: bool = True
    optional: bool = False

    def __post_init__(self) -> None:
        validate_type_name(self.type)


def validate_type_name(t: str) -> None:
    inner = t
    while inner.startswith("list<") and inner.endswith(">"):
        inner = inner[5:-1]
    if inner not in TYPE_NAMES:
        raise ValueError(
            f"unknown column type {t!r}; use one of {', '.join(TYPE_NAMES)} or list<T>"
        )


def to_arrow(t: str) -> pa.DataType | None:
    """Arrow type for a declared type; ``None`` for ``any``/``struct`` (decided by the data)."""
    if t.startswith("list<"):
        inner = to_arrow(t[5:-1])
        return pa.list_(inner) if inner is not None else None
    return {
        "string": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
    }.get(t)


def type_name(dt: pa.DataType) -> str:
    """The declared-type name that describes an Arrow type."""
    if pa.types.is_string(dt) or pa.types.is_large_string(dt):
        return "string"
    if pa.types.is_boolean(dt):
        return "bool"
    if pa.types.is_integer(dt):
        return "int"
    if pa.types.is_floating(dt) or pa.types.is_decimal(dt):
        return "float"
    if pa.types.is_list(dt) or pa.types.is_large_list(dt):
        return f"list<{type_name(dt.value_type)}>"
    if pa.types.is_struct(dt) or pa.types.is_map(dt):
        return "struct"
    return "any"


def compatible(declared: str, actual: str) -> bool:
    """Whether data of type ``actual`` may feed an input declared as ``declared``."""
    if declared == "any" or actual == "any":
        return True
    if declared == actual:
        return True
    if declared == "float" and actual == "int":
        return True
    if declared.startswith("list<") and actual.startswith("list<"):
        return compatible(declared[5:-1], actual[5:-1])
    return False


# A schema as the compiler sees it: column name -> declared-type name. Ordered like the data.
Schema = dict[str, str]


def schema_of(arrow_schema: pa.Schema) -> Schema:
    return {f.name: type_name(f.type) for f in arrow_schema}
