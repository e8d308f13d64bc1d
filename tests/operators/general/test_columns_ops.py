"""SelectColumns, DropColumns, RenameColumns: data, schema after the step, required inputs."""

from __future__ import annotations

import pyarrow as pa
import pytest

from prepflow.core.errors import CompileError, ConfigError
from prepflow.core.operator import Kind
from prepflow.engine.compiler import compile_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.operators.general.columns import DropColumns, RenameColumns, SelectColumns

SCHEMA = {"_id": "int", "text": "string", "lang": "string", "score": "float"}


@pytest.fixture
def batch() -> pa.Table:
    return pa.table(
        {
            "_id": pa.array([3, 7], pa.int64()),
            "text": ["hello world", "你好世界"],
            "lang": ["en", "zh"],
            "score": [0.5, 0.25],
        }
    )


def test_select_keeps_listed_columns_in_order_and_id_first(batch: pa.Table) -> None:
    op = SelectColumns(columns=["score", "text"])
    result = op.run_batch(batch)
    assert result.kept.to_pylist() == [
        {"_id": 3, "score": 0.5, "text": "hello world"},
        {"_id": 7, "score": 0.25, "text": "你好世界"},
    ]
    assert op.output_schema(SCHEMA) == {"_id": "int", "score": "float", "text": "string"}
    assert [c.name for c in op.required_inputs()] == ["score", "text"]


def test_drop_removes_listed_columns(batch: pa.Table) -> None:
    op = DropColumns(columns=["lang", "score"])
    assert op.run_batch(batch).kept.to_pylist() == [
        {"_id": 3, "text": "hello world"},
        {"_id": 7, "text": "你好世界"},
    ]
    assert op.output_schema(SCHEMA) == {"_id": "int", "text": "string"}
    assert [c.name for c in op.required_inputs()] == ["lang", "score"]


def test_rename_keeps_order_and_values_and_can_swap(batch: pa.Table) -> None:
    op = RenameColumns(mapping={"text": "body", "lang": "language"})
    assert op.run_batch(batch).kept.column_names == ["_id", "body", "language", "score"]
    assert op.run_batch(batch).kept["body"].to_pylist() == ["hello world", "你好世界"]
    assert op.output_schema(SCHEMA) == {
        "_id": "int",
        "body": "string",
        "language": "string",
        "score": "float",
    }
    assert [c.name for c in op.required_inputs()] == ["text", "lang"]
    swap = RenameColumns(mapping={"text": "lang", "lang": "text"})
    assert swap.run_batch(batch).kept.to_pylist()[1] == {
        "_id": 7,
        "lang": "你好世界",
        "text": "zh",
        "score": 0.25,
    }
    assert swap.output_schema(SCHEMA) == {
        "_id": "int",
        "lang": "string",
        "text": "string",
        "score": "float",
    }


def test_rename_onto_a_kept_column_is_an_error(batch: pa.Table) -> None:
    op = RenameColumns(mapping={"text": "lang"})
    with pytest.raises(ConfigError, match="two columns named 'lang'"):
        op.output_schema(SCHEMA)
    with pytest.raises(ConfigError, match="two columns named 'lang'"):
        op.run_batch(batch)


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (SelectColumns, {"columns": ["_id", "text"]}, "'_id' is the lineage column"),
        (DropColumns, {"columns": ["_id"]}, "'_id' is the lineage column"),
        (RenameColumns, {"mapping": {"_id": "id"}}, "'_id' is the lineage column"),
        (RenameColumns, {"mapping": {"id": "_id"}}, "'_id' is the lineage column"),
        (RenameColumns, {"mapping": {"a": "c", "b": "c"}}, "listed more than once: c"),
        (SelectColumns, {"columns": ["text", "text"]}, "listed more than once: text"),
        (DropColumns, {"columns": []}, "at least 1 item"),
    ],
)
def test_invalid_params(cls: type, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cls(**params)


def test_missing_columns_at_run_time_are_named(batch: pa.Table) -> None:
    with pytest.raises(ConfigError, match=r"SelectColumns: no column\(s\) 'txt' in the data"):
        SelectColumns(columns=["txt"]).run_batch(batch)
    with pytest.raises(ConfigError, match=r"DropColumns: no column\(s\) 'nope'"):
        DropColumns(columns=["nope"]).run_batch(batch)


def test_kind_is_refine() -> None:
    assert {SelectColumns.kind, DropColumns.kind, RenameColumns.kind} == {Kind.REFINE}


def test_compiler_tracks_the_schema_through_reshaping_steps() -> None:
    spec = load_yaml("""
name: t
steps:
  - {op: RenameColumns, name: r, params: {mapping: {text: body}}}
  - {op: ExpressionFilter, name: uses_old_name, params: {expr: "len(text) > 3"}}
  - {op: DropColumns, name: d, params: {columns: [lang]}}
  - {op: SelectColumns, name: s, params: {columns: [body, lang]}}
""")
    with pytest.raises(CompileError) as e:
        compile_pipeline(spec, input_schema={"text": "string", "lang": "string"})
    assert len(e.value.problems) == 2
    assert "'uses_old_name'" in e.value.problems[0] and "'text' not found" in e.value.problems[0]
    assert "step 4 's'" in e.value.problems[1] and "'lang' not found" in e.value.problems[1]
    ok = load_yaml("""
name: t
steps:
  - {op: RenameColumns, params: {mapping: {text: body}}}
  - {op: SelectColumns, params: {columns: [body]}}
""")
    plan = compile_pipeline(ok, input_schema={"text": "string", "lang": "string"})
    assert plan.steps[-1].schema_out == {"_id": "int", "body": "string"}
