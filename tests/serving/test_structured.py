"""Structured output: lenient JSON extraction, strict validation, re-asks, response_format fallback."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from prepflow.core.errors import ConfigError
from prepflow.serving.errors import InvalidOutput, RequestRejected, TruncatedOutput
from prepflow.serving.structured import InvalidJSON, OutputSchema, extract_json
from prepflow.testing import Reply

from .test_client import ask, run


class Answer(BaseModel):
    answer: int


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"answer": 4}', {"answer": 4}),
        ('```json\n{"answer": 4}\n```', {"answer": 4}),
        ('Sure! Here it is: {"answer": 4} Hope that helps.', {"answer": 4}),
        ('{"answer": 4,}', {"answer": 4}),
        ("{'answer': 4}", {"answer": 4}),
        ('{"items": ["a", "b"', {"items": ["a", "b"]}),
        ("[1, 2]", [1, 2]),
    ],
)
def test_extract_json_tolerates_fences_prose_and_minor_damage(text, value):
    assert extract_json(text) == value


def test_extract_json_rejects_text_without_json():
    with pytest.raises(InvalidJSON, match="no JSON"):
        extract_json("I cannot answer that.")


def test_schema_validation_errors_name_the_field():
    schema = OutputSchema.of(Answer)
    assert schema.parse('{"answer": "7"}') == Answer(answer=7)
    with pytest.raises(InvalidJSON, match=r"^answer: Input should be a valid integer"):
        schema.parse('{"answer": "four"}')
    with pytest.raises(InvalidJSON, match=r"^answer: Field required$"):
        schema.parse('{"other": 1}')


def test_schema_is_sent_as_response_format_and_parsed(scripted):
    server = scripted(lambda req: '```json\n{"answer": 4}\n```')
    resp, client = run(server, lambda c: c.chat(ask("2+2?"), schema=Answer))
    assert (resp.parsed, resp.attempts, client.stats.reasks) == (Answer(answer=4), 1, 0)
    assert server.received[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": Answer.model_json_schema()},
    }


def test_invalid_answer_is_reasked_with_the_problem(scripted):
    server = scripted(
        lambda req: '{"answer": "four"}' if len(req.messages) == 1 else '{"answer": 4}'
    )
    resp, client = run(server, lambda c: c.chat(ask("2+2?"), schema=Answer))
    assert (resp.parsed, resp.attempts, client.stats.reasks) == (Answer(answer=4), 2, 1)
    reask = server.received[1].body["messages"]
    assert reask[:2] == [*ask("2+2?"), {"role": "assistant", "content": '{"answer": "four"}'}]
    assert reask[2]["role"] == "user"
    assert reask[2]["content"].startswith(
        "Your answer was not usable: answer: Input should be a valid integer"
    )
    assert reask[2]["content"].endswith("\nAnswer again, correcting this.")


def test_still_invalid_after_reasks_fails_with_the_raw_text(scripted):
    server = scripted(lambda req: "I think it is four.")
    with pytest.raises(
        InvalidOutput, match=r"^the reply contains no JSON \(after 2 re-asks\)$"
    ) as e:
        run(server, lambda c: c.chat(ask("2+2?"), schema=Answer))
    assert (e.value.attempts, e.value.raw, e.value.error_type) == (
        3,
        "I think it is four.",
        "InvalidOutput",
    )
    assert len(server.received) == 3


def test_truncated_answer_is_reasked_then_fails(scripted):
    server = scripted(lambda req: Reply(content='{"answer": 4', finish_reason="length"))
    with pytest.raises(TruncatedOutput, match="cut off at the token limit") as e:
        run(server, lambda c: c.chat(ask("2+2?"), schema=Answer), max_reasks=1)
    assert (e.value.attempts, e.value.raw) == (2, '{"answer": 4')
    with pytest.raises(TruncatedOutput):  # plain text too: a cut answer is not a result
        run(server, lambda c: c.chat(ask("long story")), max_reasks=0)


def test_server_without_response_format_gets_the_schema_in_the_prompt(scripted):
    server = scripted(lambda req: '{"answer": 4}', supports_response_format=False)

    async def twice(c):
        return [await c.chat(ask(q), schema=Answer) for q in ("a?", "b?")]

    (a, b), _ = run(server, twice)
    assert (a.parsed, a.attempts, b.parsed, b.attempts) == (
        Answer(answer=4),
        2,
        Answer(answer=4),
        1,
    )
    first, fallback, second = (r.body for r in server.received)
    assert "response_format" in first and "response_format" not in fallback
    system = fallback["messages"][0]
    assert system["role"] == "system" and system["content"].startswith(
        "Reply with only a JSON object that matches this JSON schema"
    )
    assert "response_format" not in second  # remembered for the rest of the run


def test_structured_output_modes(scripted):
    server = scripted(lambda req: '{"answer": 4}', supports_response_format=False)
    resp, _ = run(server, lambda c: c.chat(ask("a?"), schema=Answer), structured_output="prompt")
    assert resp.attempts == 1 and "response_format" not in server.received[0].body
    with pytest.raises(RequestRejected, match="response_format is not supported"):
        run(server, lambda c: c.chat(ask("b?"), schema=Answer), structured_output="response_format")


def test_json_schema_dict(scripted):
    pytest.importorskip("jsonschema")
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "title": "Answer",
    }
    server = scripted(lambda req: '{"answer": 4}' if len(req.messages) > 1 else '{"answer": "4"}')
    resp, _ = run(server, lambda c: c.chat(ask("2+2?"), schema=schema))
    assert (resp.parsed, resp.attempts) == ({"answer": 4}, 2)
    assert (
        server.received[1]
        .body["messages"][2]["content"]
        .startswith("Your answer was not usable: answer: '4' is not of type 'integer'")
    )
    with pytest.raises(ConfigError, match="invalid JSON schema"):
        OutputSchema.of({"type": "no-such-type"})


def test_schema_must_be_a_model_or_dict():
    with pytest.raises(ConfigError, match="pydantic model class or a JSON-schema dict"):
        OutputSchema.of(int)
