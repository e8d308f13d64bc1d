"""ExtractJsonFields: typed extraction by dotted paths, failures with reasons (never a silent
null), on_missing: null, and the schema the compiler sees."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError
from prepflow.operators.general.json_fields import ExtractJsonFields


def table(*responses: str | None) -> pa.Table:
    return pa.table(
        {
            "_id": pa.array(range(len(responses)), pa.int64()),
            "response": pa.array(responses, pa.string()),
        }
    )


def extractor(**params) -> ExtractJsonFields:
    return ExtractJsonFields(**params).bind({"json": "response"})


def test_extracts_typed_fields_by_path() -> None:
    docs = [
        {
            "answer": {"value": "42", "unit": "米"},
            "choices": [{"text": "你好"}, {"text": "hi"}],
            "ok": "true",
            "tags": ["a", "b"],
        },
        {
            "answer": {"value": 7.0, "unit": {"si": "m"}},
            "choices": [{"text": "second"}],
            "ok": False,
            "tags": [],
        },
    ]
    op = extractor(
        fields={
            "value": "answer.value",
            "unit": "answer.unit",
            "first": "choices.0.text",
            "last": "choices.-1.text",
            "ok": "ok",
            "tags": "tags",
        },
        types={"value": "int", "ok": "bool", "tags": "list<string>"},
    )
    result = op.run_batch(table(*(json.dumps(d, ensure_ascii=False) for d in docs)))
    assert result.failed is None
    assert result.kept.drop_columns(["response"]).to_pylist() == [
        {
            "_id": 0,
            "value": 42,
            "unit": "米",
            "first": "你好",
            "last": "hi",
            "ok": True,
            "tags": ["a", "b"],
        },
        {
            "_id": 1,
            "value": 7,
            "unit": '{"si":"m"}',
            "first": "second",
            "last": "second",
            "ok": False,
            "tags": [],
        },
    ]
    assert result.kept.schema.field("value").type == pa.int64()
    assert result.kept.schema.field("tags").type == pa.list_(pa.string())


def test_bad_rows_fail_with_the_reason_and_raw_text() -> None:
    op = extractor(
        fields={"value": "answer.value", "first": "choices.0.text"}, types={"value": "float"}
    )
    rows = table(
        '{"answer": {"value": "0.5"}, "choices": [{"text": "好"}]}',
        "not json",
        '{"answer": {"value": "高"}, "choices": [{"text": "x"}]}',
        '{"answer": {"value": 1}, "choices": []}',
        '{"answer": null, "choices": [{"text": null}]}',
        None,
        '["answer"]',
    )
    result = op.run_batch(rows)
    assert result.kept.to_pylist() == [
        {"_id": 0, "response": rows["response"][0].as_py(), "value": 0.5, "first": "好"}
    ]
    failed = result.failed.to_pylist()
    assert [(f["_id"], f["_error_type"], f["_error"]) for f in failed] == [
        (
            1,
            "JSONDecodeError",
            "invalid JSON: invalid literal, expected 'null': line 1 column 1 (char 0)",
        ),
        (
            2,
            "FieldTypeError",
            "field 'value' (answer.value): Input should be a valid number, "
            "unable to parse string as a number",
        ),
        (3, "MissingField", "field 'first' (choices.0.text): choices has no index 0 (length 0)"),
        (
            4,
            "MissingField",
            "field 'value' (answer.value): answer is null, cannot look up 'value'; "
            "field 'first' (choices.0.text): value is null",
        ),
        (5, "MissingField", "column 'response' is null"),
        (
            6,
            "MissingField",
            "field 'value' (answer.value): the document is a list, not an object "
            "with key 'answer'; field 'first' (choices.0.text): the document is a "
            "list, not an object with key 'choices'",
        ),
    ]
    assert [f["_raw"] for f in failed] == rows["response"].to_pylist()[1:]
    assert result.kept.num_rows + result.n_failed == rows.num_rows


def test_on_missing_null_fills_missing_fields_but_still_fails_broken_rows() -> None:
    op = extractor(fields={"value": "answer.value"}, types={"value": "int"}, on_missing="null")
    result = op.run_batch(
        table(
            '{"answer": {"value": 3}}',
            '{"answer": {}}',
            None,
            "{broken",
            '{"answer": {"value": "three"}}',
        )
    )
    assert result.kept.select(["_id", "value"]).to_pylist() == [
        {"_id": 0, "value": 3},
        {"_id": 1, "value": None},
        {"_id": 2, "value": None},
    ]
    assert [(f["_id"], f["_error_type"]) for f in result.failed.to_pylist()] == [
        (3, "JSONDecodeError"),
        (4, "FieldTypeError"),
    ]


def test_output_schema_and_overwriting_an_existing_column() -> None:
    op = extractor(fields={"answer": "a", "n": "b"}, types={"n": "int"})
    assert op.output_schema({"_id": "int", "response": "string", "answer": "any"}) == {
        "_id": "int",
        "response": "string",
        "answer": "string",
        "n": "int",
    }
    batch = table('{"a": "new", "b": 1}').append_column("answer", pa.array(["old"]))
    assert op.run_batch(batch).kept.to_pylist() == [
        {"_id": 0, "response": '{"a": "new", "b": 1}', "answer": "new", "n": 1}
    ]
    assert [(c.name, c.type) for c in op.required_inputs()] == [("json", "string")]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fields": {}}, "fields"),
        ({"fields": {"a": "x..y"}}, "path 'x..y' has an empty segment"),
        ({"fields": {"a": "x"}, "types": {"b": "int"}}, "types given for unknown field"),
        ({"fields": {"a": "x"}, "types": {"a": "decimal"}}, "types.a"),
        ({"fields": {"a": "x"}, "on_missing": "skip"}, "on_missing"),
    ],
)
def test_invalid_params(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExtractJsonFields(**params)


def test_wrong_input_column_type_is_a_clear_error() -> None:
    batch = pa.table({"_id": pa.array([0], pa.int64()), "response": [1]})
    with pytest.raises(ConfigError, match="column 'response' holds int64, not JSON text"):
        extractor(fields={"a": "a"}).run_batch(batch)


def test_empty_batch_gets_the_typed_columns() -> None:
    result = extractor(fields={"a": "a"}, types={"a": "int"}).run_batch(table())
    assert result.kept.schema.names == ["_id", "response", "a"]
    assert result.kept.schema.field("a").type == pa.int64()
    assert result.kept.num_rows == 0 and result.failed is None
