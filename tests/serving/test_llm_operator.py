"""The LLM operator base: prompts, parsing, failure records, kinds, overlap across batches."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pyarrow as pa
import pytest
from pydantic import BaseModel, Field

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError, OperatorContractError
from prepflow.core.llm import LLMOperator, LLMParams, fields_model, python_type
from prepflow.core.operator import Kind
from prepflow.core.prompts import PromptTemplate
from prepflow.serving.client import OpenAIServing
from prepflow.testing import FakeContext, run_operator


class Sum(BaseModel):
    answer: int


class AddOp(LLMOperator):
    """Adds two numbers with the model (test operator)."""

    abstract = True  # keep test operators out of the registry
    name = "AddOp"
    kind = Kind.EVALUATE
    inputs = (Column("question", "string"),)
    outputs = (Column("answer", "int"),)
    template = PromptTemplate("Compute {{ question }}. Reply as JSON.", "You add numbers.")
    schema = Sum

    class Params(LLMParams):
        shout: bool = Field(False, description="unused; shows params reach templates")

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        if row[self.col("question")] == "0+0":
            return {"answer": None}
        return {"answer": response.parsed.answer}


def adder(req) -> str:
    """'Compute a+b. Reply as JSON.' -> {"answer": a+b}; anything else -> prose."""
    m = re.match(r"Compute (\d+)\+(\d+)\.", req.prompt)
    return f'{{"answer": {int(m[1]) + int(m[2])}}}' if m else "I cannot."


def table(questions: list[str | None], column: str = "q") -> pa.Table:
    return pa.table({"_id": pa.array(range(len(questions)), pa.int64()), column: questions})


def test_every_row_is_a_result_or_a_failure_record(scripted):
    server = scripted(adder)
    op = AddOp().bind({"question": "q"})
    result = run_operator(
        op, table(["1+2", "20+22", "two plus two", None, "0+0"]), server, max_reasks=1
    )
    assert result.kept.to_pydict() == {"_id": [0, 1], "q": ["1+2", "20+22"], "answer": [3, 42]}
    assert result.kept.schema.field("answer").type == pa.int64()
    failed = result.failed.to_pydict()
    assert failed["_id"] == [2, 3, 4]
    assert failed["_error_type"] == ["InvalidOutput", "PromptError", "ParseError"]
    assert failed["_error"] == [
        "the reply contains no JSON (after 1 re-asks)",
        "prompt: 'question' is undefined (null or missing in this row)",
        "ValueError: no value for output 'answer'",
    ]
    assert failed["_attempts"] == [2, 0, 1]
    assert failed["_raw"] == ["I cannot.", None, '{"answer": 0}']
    assert server.received[0].body["messages"] == [
        {"role": "system", "content": "You add numbers."},
        {"role": "user", "content": "Compute 1+2. Reply as JSON."},
    ]


def test_yaml_prompt_overrides_replace_the_default_without_subclassing(scripted):
    server = scripted(adder)
    op = AddOp(
        prompt="Compute {{ q }}. Be brief{% if shout %}!{% endif %}",
        system_prompt="Math only.",
        shout=True,
    ).bind({"question": "q"})
    result = run_operator(op, table(["2+2"]), server)
    assert result.kept.column("answer").to_pylist() == [4]
    assert server.received[0].body["messages"] == [
        {"role": "system", "content": "Math only."},
        {"role": "user", "content": "Compute 2+2. Be brief!"},
    ]


def test_fingerprint_follows_prompt_and_schema():
    base = AddOp().fingerprint_extra()
    assert AddOp().fingerprint_extra() == base
    assert AddOp(prompt="Compute {{ question }}!").fingerprint_extra() != base
    assert AddOp(system_prompt="Other.").fingerprint_extra() != base
    other_schema = AddOp()
    other_schema.schema = fields_model("Sum", {"answer": "float"})
    assert other_schema.fingerprint_extra() != base


def test_required_inputs_come_from_declared_inputs_and_the_template():
    op = AddOp(prompt="{{ question }} given {{ context }}{% if shout %}!{% endif %}")
    assert [(c.name, c.type, c.optional) for c in op.required_inputs()] == [
        ("question", "string", False),
        ("context", "any", False),
    ]
    assert op.output_schema({"question": "string"}) == {"question": "string", "answer": "int"}


def test_estimate_counts_requests_and_token_bounds():
    op = AddOp(generation={"max_tokens": 20})
    text = AddOp.template.user + AddOp.template.system
    assert op.estimate(10) == {
        "requests": 10,
        "prompt_tokens_min": 10 * (len(text) // 4),
        "completion_tokens_max": 200,
    }


def test_template_errors_and_missing_serving_are_clear():
    with pytest.raises(ConfigError, match=r"^AddOp: prompt: template syntax error on line 1"):
        AddOp(prompt="{{ question ")
    with pytest.raises(ConfigError, match="needs an LLM: add a 'serving:' section"):
        AddOp().setup(FakeContext())
    with pytest.raises(OperatorContractError, match="setup"):
        asyncio.run(AddOp().arun_batch(table(["1+1"], "question")))
    with pytest.raises(OperatorContractError, match="is async"):
        AddOp().run_batch(table(["1+1"], "question"))


class Verdict(BaseModel):
    keep: bool
    reason: str


class KeepOp(LLMOperator):
    abstract = True
    name = "KeepOp"
    kind = Kind.FILTER
    template = PromptTemplate("Keep {{ text }}?")
    schema = Verdict

    def parse(self, row: dict[str, Any], response: Any) -> tuple[bool, str]:
        return response.parsed.keep, response.parsed.reason


def test_filter_records_a_reason_for_each_drop(scripted):
    def judge(req) -> str:
        keep = "good" in req.prompt
        return f'{{"keep": {str(keep).lower()}, "reason": "{"fine" if keep else "no good"}"}}'

    result = run_operator(
        KeepOp(), table(["good one", "bad one", "good two"], "text"), scripted(judge)
    )
    assert result.kept.to_pydict() == {"_id": [0, 2], "text": ["good one", "good two"]}
    assert result.dropped.to_pydict() == {"_id": [1], "text": ["bad one"], "_reason": ["no good"]}
    assert result.failed is None


class SplitOp(LLMOperator):
    abstract = True
    name = "SplitOp"
    kind = Kind.GENERATE
    outputs = (Column("word", "string"),)
    template = PromptTemplate("Split: {{ text }}")

    def parse(self, row: dict[str, Any], response: Any) -> list[dict[str, Any]]:
        return [{"word": w} for w in response.text.split()]


def test_fan_out_children_keep_the_parent_id_and_empty_fan_out_fails(scripted):
    server = scripted(lambda req: req.prompt.removeprefix("Split: "))
    result = run_operator(SplitOp(), table(["a b", "   ", "c"], "text"), server)
    assert result.kept.to_pydict() == {
        "_id": [0, 0, 2],
        "text": ["a b", "a b", "c"],
        "word": ["a", "b", "c"],
    }
    assert result.failed.to_pydict()["_error"] == ["ValueError: parse returned no rows"]


class UpperOp(LLMOperator):
    abstract = True
    name = "UpperOp"
    kind = Kind.REFINE
    inputs = (Column("text", "string"),)
    outputs = (Column("text", "string"),)
    template = PromptTemplate("Upper: {{ text }}")

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"text": response.text}


def test_refine_rewrites_the_bound_column_in_place(scripted):
    server = scripted(lambda req: req.prompt.removeprefix("Upper: ").upper())
    batch = pa.table({"_id": pa.array([5, 6], pa.int64()), "body": ["ab", "cd"], "n": [1, 2]})
    result = run_operator(UpperOp().bind({"text": "body"}), batch, server)
    assert result.kept.to_pydict() == {"_id": [5, 6], "body": ["AB", "CD"], "n": [1, 2]}


def test_wrong_output_types_and_unknown_outputs_are_failures(scripted):
    class Loose(AddOp):
        abstract = True
        schema = None

        def parse(self, row, response):
            return {"answer": response.text} if row[self.col("question")] == "x" else {"answr": 1}

    result = run_operator(Loose(), table(["x", "y"], "question"), scripted(lambda req: "seven"))
    assert result.kept.num_rows == 0
    assert result.failed.column("_error").to_pylist() == [
        "TypeError: output 'answer' is not int: 'seven'",
        "ValueError: unknown output(s) ['answr']; declared: ['answer']",
    ]


def test_batches_in_flight_together_overlap(scripted):
    server = scripted(adder, latency=0.3)

    async def main() -> list[Any]:
        async with OpenAIServing(server.url, server.model, concurrency=32) as serving:
            op = AddOp()
            op.setup(FakeContext(serving=serving))
            batches = [table([f"{b}+{i}" for i in range(8)], "question") for b in (10, 20)]
            return await asyncio.gather(*(op.arun_batch(b) for b in batches))

    first, second = asyncio.run(main())
    assert first.kept.column("answer").to_pylist() == list(range(10, 18))
    assert second.kept.column("answer").to_pylist() == list(range(20, 28))
    assert server.peak_active == 16  # both batches' requests were in flight at once


def test_fields_model_maps_column_types():
    model = fields_model("QA", {"question": "string", "tags": "list<string>", "score": "float"})
    assert model(question="q", tags=["a"], score=1).model_dump() == {
        "question": "q",
        "tags": ["a"],
        "score": 1.0,
    }
    assert python_type("list<list<int>>") == list[list[int]]
    with pytest.raises(ConfigError, match="field 'x': unknown column type 'str'"):
        fields_model("QA", {"x": "str"})
    with pytest.raises(ConfigError, match="must be an identifier"):
        fields_model("QA", {"my-field": "string"})


def test_unusable_answers_leave_the_cache_so_a_retry_asks_again(scripted, tmp_path):
    """'0+0' fails in parse and '9+9' gets prose (invalid for the schema, re-asked, given up):
    a second pass over the same cache replays the good answers and asks again for those two."""
    server = scripted(lambda req: "no" if "9+9" in req.prompt else adder(req))
    op = AddOp().bind({"question": "q"})
    batch = table(["1+2", "0+0", "9+9"])
    first = run_operator(op, batch, server, cache_path=tmp_path / "c.sqlite", max_reasks=1)
    assert first.failed.column("_error_type").to_pylist() == ["ParseError", "InvalidOutput"]
    assert [
        server.count(p) for p in ("Compute 1+2. Reply as JSON.", "Compute 0+0. Reply as JSON.")
    ] == [1, 1]
    sent = server.count()
    again = run_operator(op, batch, server, cache_path=tmp_path / "c.sqlite", max_reasks=1)
    assert again.kept.column("answer").to_pylist() == [3]
    assert server.count("Compute 1+2. Reply as JSON.") == 1  # replayed from the cache
    assert server.count("Compute 0+0. Reply as JSON.") == 2  # asked again
    assert server.count() - sent == 1 + 2  # 0+0 once, 9+9 and its re-ask
