"""Generic prompted operators (generator, evaluator, filter, refiner, fan-out) against the scripted server."""

from __future__ import annotations

import re

import orjson
import pyarrow as pa
import pytest

from prepflow.core.errors import ConfigError
from prepflow.core.registry import registry
from prepflow.operators.general.llm import (
    PromptedEvaluator,
    PromptedFanOutGenerator,
    PromptedFilter,
    PromptedGenerator,
    PromptedRefiner,
)
from prepflow.testing import Reply, run_operator


def rows(**columns: list) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"_id": pa.array(range(n), pa.int64()), **columns})


def after(marker: str, text: str) -> str:
    return text.split(marker, 1)[1].split("\n", 1)[0].strip()


def test_generic_operators_are_registered_with_llm_requirements():
    for name, kind in [
        ("PromptedGenerator", "generate"),
        ("PromptedEvaluator", "evaluate"),
        ("PromptedFilter", "filter"),
        ("PromptedRefiner", "refine"),
        ("PromptedFanOutGenerator", "generate"),
    ]:
        info = registry.info(name)
        assert (info["kind"], info["requires"]["llm"], info["domain"]) == (kind, True, "general")
        assert all(p["description"] for p in info["params"])


def test_generator_writes_the_reply_to_the_bound_column(scripted):
    server = scripted(lambda req: f"  summary of {req.prompt.removeprefix('Summarize: ')}\n")
    op = PromptedGenerator(prompt="Summarize: {{ text }}").bind({"generated": "summary"})
    result = run_operator(op, rows(text=["cats", "dogs"]), server)
    assert result.kept.to_pydict() == {
        "_id": [0, 1],
        "text": ["cats", "dogs"],
        "summary": ["summary of cats", "summary of dogs"],
    }
    assert [c.name for c in op.required_inputs()] == ["text"]
    assert op.output_schema({"text": "string"}) == {"text": "string", "summary": "string"}


def test_generator_with_fields_gives_typed_columns(scripted):
    def qa(req):
        topic = req.prompt.removeprefix("Quiz about ")
        return orjson.dumps({"question": f"What is {topic}?", "difficulty": len(topic)}).decode()

    op = PromptedGenerator(
        prompt="Quiz about {{ topic }}", fields={"question": "string", "difficulty": "int"}
    )
    result = run_operator(op, rows(topic=["sql", "rust"]), scripted(qa))
    assert result.kept.to_pydict() == {
        "_id": [0, 1],
        "topic": ["sql", "rust"],
        "question": ["What is sql?", "What is rust?"],
        "difficulty": [3, 4],
    }
    assert result.kept.schema.field("difficulty").type == pa.int64()
    assert op.output_schema({"topic": "string"}) == {
        "topic": "string",
        "question": "string",
        "difficulty": "int",
    }


def test_generator_empty_reply_is_a_failure(scripted):
    result = run_operator(
        PromptedGenerator(prompt="{{ text }}"), rows(text=["x"]), scripted(lambda req: "   ")
    )
    assert result.failed.to_pydict()["_error"] == ["ValueError: empty reply"]


def judge(req) -> str:
    """Scores by length (out of range for very long texts, to exercise the re-ask)."""
    text = after("Text:\n", req.messages[1]["content"] + "\n")
    if len(req.messages) > 2:  # a re-ask: answer within the scale
        return '{"rationale": "corrected", "score": 5}'
    return orjson.dumps({"rationale": f"{len(text)} chars", "score": len(text)}).decode()


def test_evaluator_scores_with_rationale_and_reasks_out_of_range(scripted):
    server = scripted(judge)
    op = PromptedEvaluator(criteria="length").bind({"text": "body"})
    result = run_operator(op, rows(body=["ab", "abcd", "abcdefghij"]), server)
    assert result.kept.to_pydict() == {
        "_id": [0, 1, 2],
        "body": ["ab", "abcd", "abcdefghij"],
        "score": [2.0, 4.0, 5.0],
        "rationale": ["2 chars", "4 chars", "corrected"],
    }
    first = server.received[0].body
    assert first["messages"][1]["content"] == (
        "Judge the following text for length.\n\nText:\nab\n\nGive a short rationale (one or two "
        "sentences), then a score from 1 (worst) to 5 (best). Reply with only a JSON object: "
        '{"rationale": "...", "score": <number>}'
    )
    score = first["response_format"]["json_schema"]["schema"]["properties"]["score"]
    assert (score["minimum"], score["maximum"]) == (1, 5)


def test_evaluator_rejects_an_empty_scale():
    with pytest.raises(ConfigError, match="min_score"):
        PromptedEvaluator(min_score=5, max_score=5)


def test_filter_keeps_scores_at_threshold_and_records_why_others_dropped(scripted):
    op = PromptedFilter(threshold=3)
    result = run_operator(op, rows(text=["ab", "abc", "abcd"]), scripted(judge))
    assert result.kept.to_pydict() == {"_id": [1, 2], "text": ["abc", "abcd"]}
    assert result.dropped.to_pydict() == {
        "_id": [0],
        "text": ["ab"],
        "_reason": ["threshold: score=2 < 3; 2 chars"],
    }
    assert PromptedFilter(threshold=7).check() == [
        "PromptedFilter: threshold 7 is outside the scale [1, 5]"
    ]


def test_refiner_rewrites_in_place_and_unwraps_fences(scripted):
    def fix(req):
        text = req.prompt.rsplit("Text:\n", 1)[1]
        return "" if text == "???" else f"```\n{text.replace('teh', 'the')}\n```"

    op = PromptedRefiner(instruction="Fix typos.")
    result = run_operator(op, rows(text=["teh cat", "???"], n=[1, 2]), scripted(fix))
    assert result.kept.to_pydict() == {"_id": [0], "text": ["the cat"], "n": [1]}
    assert result.failed.to_pydict()["_error"] == ["ValueError: empty reply"]
    assert op.prompt({"text": "teh cat"}) == [
        {
            "role": "user",
            "content": (
                "Fix typos.\n\nReply with only the rewritten text, without comments or quotes."
                "\n\nText:\nteh cat"
            ),
        }
    ]


def test_fan_out_list_mode_gives_n_children_with_the_parent_id(scripted):
    def questions(req):
        m = re.match(r"Write (\d+) questions about (\w+)", req.messages[0]["content"])
        n = int(m[1]) - (1 if len(req.messages) == 1 and m[2] == "b" else 0)  # 'b': one short, once
        return orjson.dumps({"items": [f"{m[2]} q{i}" for i in range(n)]}).decode()

    op = PromptedFanOutGenerator(prompt="Write {{ n }} questions about {{ text }}", n=3)
    result = run_operator(op, rows(text=["a", "b"]), scripted(questions))
    assert result.kept.to_pydict() == {
        "_id": [0, 0, 0, 1, 1, 1],
        "text": ["a"] * 3 + ["b"] * 3,
        "generated": ["a q0", "a q1", "a q2", "b q0", "b q1", "b q2"],
    }
    assert op.estimate(10)["requests"] == 10


def test_fan_out_samples_mode_asks_n_times_with_distinct_seeds(scripted):
    server = scripted(lambda req: f"{req.prompt} (seed {req.body['seed']})")
    op = PromptedFanOutGenerator(
        prompt="Variant {{ index }} of {{ text }}",
        n=2,
        mode="samples",
        generation={"temperature": 0.8, "seed": 10},
    )
    result = run_operator(op, rows(text=["x"]), server)
    assert result.kept.to_pydict() == {
        "_id": [0, 0],
        "text": ["x", "x"],
        "generated": ["Variant 0 of x (seed 10)", "Variant 1 of x (seed 11)"],
    }
    assert [c.name for c in op.required_inputs()] == ["text"]
    assert op.estimate(10)["requests"] == 20


def test_fan_out_samples_mode_fails_the_row_when_a_sample_fails(scripted):
    server = scripted(
        lambda req: (
            Reply(status=400, raw=b'{"error": {"message": "bad"}}') if "1" in req.prompt else "ok"
        )
    )
    op = PromptedFanOutGenerator(prompt="{{ index }} {{ text }}", n=2, mode="samples")
    result = run_operator(op, rows(text=["x"]), server)
    assert result.kept.num_rows == 0
    assert result.failed.to_pydict()["_error_type"] == ["RequestRejected"]
