"""ExpressionFilter: results on literal English/Chinese rows, null semantics, the security
whitelist (every rejected construct names its token and column) and compile-time checks."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from prepflow.core.errors import CompileError, ConfigError
from prepflow.engine.compiler import compile_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.operators.general.expr import ExpressionFilter

TEXTS = [
    "The quick brown fox jumps over the lazy dog",  # 43 chars, 9 words
    "短文本",
    None,
    "数据准备决定了模型学到什么内容",  # 15 chars
    "Hello world",
    "全角\u3000空格",  # two words split by an ideographic space
]


@pytest.fixture
def batch() -> pa.Table:
    return pa.table(
        {
            "_id": pa.array(range(6), pa.int64()),
            "text": TEXTS,
            "lang": ["en", "zh", "en", "zh", "en", "zh"],
            "score": [0.9, 0.2, None, 0.7, 0.5, None],
            "source": ["web", "book", "web", "forum", "book", None],
        }
    )


@pytest.mark.parametrize(
    ("expr", "kept"),
    [
        ("len(text) >= 10 and lang == 'en'", [0, 4]),
        ("len(text) >= 10 and lang == 'zh'", [3]),
        ("not (source in ['web', 'book'])", [3, 5]),
        ("source not in ['web']", [1, 3, 4, 5]),
        ("source in ('forum', None)", [3, 5]),
        ("score > 0.5", [0, 3]),
        ("not (score > 0.5)", [1, 4]),  # null score: the condition is null, the row is dropped
        ("score is None", [2, 5]),
        ("score is not None", [0, 1, 3, 4]),
        ("coalesce(score, 0.0) >= 0.5", [0, 3, 4]),
        ("0.1 < score <= 0.7", [1, 3, 4]),
        ("'fox' in text", [0]),
        ("'文本' in text", [1]),
        ("'o' not in text", [1, 3, 5]),
        ("words(text) == 2", [4, 5]),
        ("startswith(text, 'The') or endswith(text, '内容')", [0, 3]),
        ("contains(lower(text), 'hello')", [4]),
        ("matches(text, '^[A-Z][a-z]+ [a-z]+$')", [4]),
        ("upper(lang) == 'ZH' and len(strip(text)) < 10", [1, 5]),
        ("score * 2 - 1 > 0.3", [0, 3]),
        ("len(text) % 2 == 1", [0, 1, 3, 4, 5]),
        ("len(text) / 0 is None", [0, 1, 2, 3, 4, 5]),  # division by zero gives null
        ("-score < -0.6", [0, 3]),
        ("abs(score - 0.6) < 0.15", [3, 4]),
        ("col('lang') == 'en'", [0, 2, 4]),
        ("len(text) > 1e9 or lang == 'en'", [0, 2, 4]),
        ("True", [0, 1, 2, 3, 4, 5]),
        ("False", []),
        ("source in []", []),
    ],
)
def test_kept_rows(batch: pa.Table, expr: str, kept: list[int]) -> None:
    result = ExpressionFilter(expr=expr).run_batch(batch)
    assert result.kept["_id"].to_pylist() == kept
    assert result.kept.column_names == batch.column_names
    dropped = [] if result.dropped is None else result.dropped["_id"].to_pylist()
    assert sorted(kept + dropped) == list(range(6))
    if dropped:
        assert set(result.dropped["_reason"].to_pylist()) == {f"expr false: {expr}"}


def test_works_on_multi_chunk_columns(batch: pa.Table) -> None:
    chunked = pa.Table.from_batches(batch.to_batches(max_chunksize=2))
    result = ExpressionFilter(expr="len(text) >= 10 and lang == 'en'").run_batch(chunked)
    assert result.kept["_id"].to_pylist() == [0, 4]


def test_all_null_column_takes_the_type_the_expression_implies() -> None:
    batch = pa.table({"_id": pa.array([0, 1], pa.int64()), "lang": pa.nulls(2), "n": [1, 2]})
    assert ExpressionFilter(expr="lang == 'en' or n > 1").run_batch(batch).kept[
        "_id"
    ].to_pylist() == [1]
    assert ExpressionFilter(expr="len(lang) > 1 or n == 1").run_batch(batch).kept[
        "_id"
    ].to_pylist() == [0]


@pytest.mark.parametrize(
    ("expr", "message", "column"),
    [
        ("__import__('os')", "function '__import__' is not allowed", 1),
        (
            "__import__('os').system('ls')",
            "attribute access \"__import__('os').system\" is not allowed",
            1,
        ),
        (
            "len(text) > 3 and text.__class__",
            "attribute access 'text.__class__' is not allowed",
            19,
        ),
        (
            "text.lower() == 'a'",
            "attribute access 'text.lower' is not allowed; write lower(text) instead",
            1,
        ),
        ("().__class__.__bases__[0]", "subscript '().__class__.__bases__[0]' is not allowed", 1),
        ("text[0] == 'a'", "subscript 'text[0]' is not allowed", 1),
        ("(lambda: 1)() == 1", "lambda 'lambda: 1' is not allowed", 2),
        ("len([t for t in text]) > 1", "comprehension '[t for t in text]' is not allowed", 5),
        ("any(t for t in text)", "function 'any' is not allowed", 1),
        ("__builtins__ is None", "name '__builtins__' is not allowed", 1),
        ("open('/etc/passwd') is None", "function 'open' is not allowed", 1),
        ("eval('1') == 1", "function 'eval' is not allowed", 1),
        ("getattr(text, 'x') is None", "function 'getattr' is not allowed", 1),
        ("score ** 2 > 1", "operator '**' is not allowed", 1),
        ("score // 2 > 1", "operator '//' is not allowed", 1),
        ("{'a': 1} is None", "dict literal \"{'a': 1}\" is not allowed", 1),
        ("f'{text}' == 'a'", "f-string \"f'{text}'\" is not allowed", 1),
        ("(x := 1) == 1", "assignment expression 'x := 1' is not allowed", 2),
        (
            "('a' if lang else 'b') == 'a'",
            "conditional expression \"'a' if lang else 'b'\" is not allowed",
            2,
        ),
        ("lower(text=lang) == 'a'", "keyword arguments are not allowed in lower()", 7),
        ("startswith(text, lang)", "startswith() needs a string literal here, not 'lang'", 18),
        (
            "'中文' == 中文 and y.z",
            "attribute access 'y.z' is not allowed",
            16,
        ),  # columns count characters
        ("text == None", "use 'is None' instead of '== None'", 9),
        ("lang == 1 or lang == 'en'", "column 'lang' is used as float and as string", 14),
        ("'a' < 3", "'<' mixes types: \"'a'\" (string) and '3' (number)", 1),
        ("len(text)", "the expression needs a bool, but 'len(text)' is a number", 1),
        ("lang in other", "'in' needs a list of literals on the right", 9),
        ("matches(text, '(')", "invalid regular expression '('", 15),
        ("x == 2**64", "operator '**' is not allowed", 6),
        ("x == 99999999999999999999", "integer 99999999999999999999 does not fit in 64 bits", 6),
        ("len(text) >", "syntax error", None),
        ("not " * 20000 + "flag", "is nested too deeply", None),
    ],
)
def test_rejected_expressions_name_the_token(expr: str, message: str, column: int | None) -> None:
    with pytest.raises(ConfigError) as e:
        ExpressionFilter(expr=expr)
    text = str(e.value)
    assert text.startswith("ExpressionFilter: parameter 'expr': ")
    assert message in text
    if column is not None:
        assert f" at column {column}\n" in text


def test_multiline_expressions_run_and_errors_name_the_line(batch: pa.Table) -> None:
    op = ExpressionFilter(expr="lang == 'en'\n  and len(text) > 20\n")
    assert op.run_batch(batch).kept["_id"].to_pylist() == [0]
    with pytest.raises(
        ConfigError, match=r"subscript 'text\[0\]' is not allowed at line 2, column 5"
    ):
        ExpressionFilter(expr="lang == 'en'\nand text[0] == 'a'")


def test_required_inputs_name_the_columns_with_implied_types() -> None:
    op = ExpressionFilter(expr="len(text) >= 20 and lang == 'en' and score > 0.5 and flag")
    assert [(c.name, c.type) for c in op.required_inputs()] == [
        ("text", "any"),
        ("lang", "string"),
        ("score", "float"),
        ("flag", "bool"),
    ]
    assert ExpressionFilter(expr="True").required_inputs() == []


def test_compiler_reports_misspelled_and_mistyped_columns() -> None:
    spec = load_yaml("""
name: t
steps:
  - {op: ExpressionFilter, name: a, params: {expr: "len(txt) > 3"}}
  - {op: ExpressionFilter, name: b, params: {expr: "lang > 3"}}
  - {op: ExpressionFilter, name: c, params: {expr: "len(text) > 3 and lang == 'en'"}}
""")
    with pytest.raises(CompileError) as e:
        compile_pipeline(spec, input_schema={"text": "string", "lang": "string"})
    assert len(e.value.problems) == 2
    assert "input column 'txt' not found" in e.value.problems[0]
    assert "input column 'lang' is string, ExpressionFilter expects float" in e.value.problems[1]


def test_runtime_errors_are_clear(batch: pa.Table) -> None:
    with pytest.raises(ConfigError, match="no column 'missing'"):
        ExpressionFilter(expr="missing > 1").run_batch(batch)
    ints = pa.table({"_id": pa.array([0], pa.int64()), "n": pa.array([2**62])})
    with pytest.raises(ConfigError, match="cannot be evaluated on this data: overflow"):
        ExpressionFilter(expr="n * 4 > 0").run_batch(ints)
    with pytest.raises(ConfigError, match="utf8_length"):
        ExpressionFilter(expr="len(n) > 0").run_batch(ints)


def test_survives_pickling_and_binding(batch: pa.Table) -> None:
    op = ExpressionFilter(expr="score > 0.5")
    for copy in (pickle.loads(pickle.dumps(op)), op.bind({})):
        assert copy.run_batch(batch).kept["_id"].to_pylist() == [0, 3]
