"""Reshape the columns of a dataset: select, drop, rename.

These are ``refine`` operators: they rewrite the shape of existing data without adding rows or
values. Their columns depend on parameters, so they override ``required_inputs`` (the compiler
checks that every named column exists at the step) and ``output_schema`` (so later steps see the
new shape). The lineage column ``_id`` always survives and cannot be named in their parameters.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from pydantic import Field, field_validator

from prepflow.core.columns import Column, Schema
from prepflow.core.errors import ConfigError
from prepflow.core.operator import ID, Params, RefineOperator


def _check_names(names: Iterable[str]) -> None:
    names = list(names)
    if ID in names:
        raise ValueError(
            f"{ID!r} is the lineage column: it is always kept and cannot be named here"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"column(s) listed more than once: {', '.join(repeated)}")


def _require(op: str, batch: pa.Table, names: Iterable[str]) -> None:
    missing = [n for n in names if n not in batch.column_names]
    if missing:
        raise ConfigError(
            f"{op}: no column(s) {', '.join(map(repr, missing))} in the data "
            f"(columns: {', '.join(batch.column_names)})"
        )


class _ColumnList(Params):
    columns: list[str] = Field(..., min_length=1, description="column names")

    @field_validator("columns")
    @classmethod
    def _valid(cls, v: list[str]) -> list[str]:
        _check_names(v)
        return v


class SelectColumns(RefineOperator):
    """Keep only the listed columns, in the listed order (``_id`` is always kept, first).

    Use it to trim a dataset to what training needs, e.g. ``columns: [instruction, output]``.
    Every listed column must exist at this step.
    """

    class Params(_ColumnList):
        columns: list[str] = Field(
            ..., min_length=1, description="columns to keep, in output order"
        )

    def required_inputs(self) -> list[Column]:
        return [Column(c, "any", "selected") for c in self.params.columns]

    def output_schema(self, schema: Schema) -> Schema:
        kept = {ID: schema[ID]} if ID in schema else {}
        return kept | {c: schema.get(c, "any") for c in self.params.columns}

    def process(self, batch: pa.Table) -> pa.Table:
        _require(self.name, batch, self.params.columns)
        return batch.select([ID, *self.params.columns])


class DropColumns(RefineOperator):
    """Remove the listed columns; the others keep their order.

    Every listed column must exist at this step (a misspelt name is an error, not a no-op).
    """

    class Params(_ColumnList):
        columns: list[str] = Field(..., min_length=1, description="columns to remove")

    def required_inputs(self) -> list[Column]:
        return [Column(c, "any", "dropped") for c in self.params.columns]

    def output_schema(self, schema: Schema) -> Schema:
        return {k: v for k, v in schema.items() if k not in self.params.columns}

    def process(self, batch: pa.Table) -> pa.Table:
        _require(self.name, batch, self.params.columns)
        return batch.drop_columns(self.params.columns)


class RenameColumns(RefineOperator):
    """Rename columns in place (``{old: new}``); order and values are unchanged.

    Renames happen at once, so ``{a: b, b: a}`` swaps two columns. A new name may not collide
    with a column that keeps its name.
    """

    class Params(Params):
        mapping: dict[str, str] = Field(..., min_length=1, description="old name -> new name")

        @field_validator("mapping")
        @classmethod
        def _valid(cls, v: dict[str, str]) -> dict[str, str]:
            _check_names(v)
            _check_names(v.values())
            return v

    def required_inputs(self) -> list[Column]:
        return [Column(c, "any", "renamed") for c in self.params.mapping]

    def _renamed(self, names: list[str]) -> list[str]:
        out = [self.params.mapping.get(n, n) for n in names]
        clashes = sorted({n for n in out if out.count(n) > 1})
        if clashes:
            raise ConfigError(
                f"{self.name}: renaming would give two columns named "
                f"{', '.join(map(repr, clashes))}"
            )
        return out

    def output_schema(self, schema: Schema) -> Schema:
        return dict(zip(self._renamed(list(schema)), schema.values(), strict=True))

    def process(self, batch: pa.Table) -> pa.Table:
        _require(self.name, batch, self.params.mapping)
        return batch.rename_columns(self._renamed(batch.column_names))
