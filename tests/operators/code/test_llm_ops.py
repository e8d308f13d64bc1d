"""Code LLM operators against the scripted OpenAI-compatible server (real HTTP on loopback);
CRUXEval items also run in the real sandbox."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
import textwrap as textwrap_module
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.compute
import pytest

from prepflow.operators.code.generators import (
    CodeEnhancer,
    CodeInstructionSynthesizer,
    CodeQualityJudge,
    CodeToInstruction,
    CruxEvalGenerator,
    InstructionToCode,
    UnitTestGenerator,
)
from prepflow.sandbox import open_sandbox
from prepflow.testing import ChatRequest, ScriptedServer, run_operator

SHORTEN = inspect.getsource(textwrap_module.shorten)


def table(**columns: list) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"_id": pa.array(range(n), pa.int64()), **columns})


def fence(code: str) -> str:
    return f"Sure, here it is:\n```python\n{code}\n```\nHope it helps."


def test_self_instruct_fans_out_programming_tasks():
    def responder(req: ChatRequest) -> str:
        assert "Come up with 2 new programming tasks" in req.prompt
        return json.dumps({"items": ["Write `rev(s)`.", "Write `evens(xs)`."]})

    with ScriptedServer(responder) as server:
        r = run_operator(
            CodeInstructionSynthesizer(n=2), table(seed=["Write `add(a, b)`."]), server
        )
    assert r.kept.column("instruction").to_pylist() == ["Write `rev(s)`.", "Write `evens(xs)`."]


def test_code_to_instruction_shows_real_code():
    with ScriptedServer(lambda req: "  Write shorten(text, width).  ") as server:
        r = run_operator(CodeToInstruction(), table(code=[SHORTEN]), server)
        prompt = server.received[0].prompt
    assert "def shorten(text, width, **kwargs):" in prompt
    assert r.kept.column("instruction").to_pylist() == ["Write shorten(text, width)."]
    assert server.received[0].body["max_tokens"] == 512


def test_instruction_to_code_keeps_parsing_code_only():
    replies = {"good": fence("def f(x):\n    return x * 2"), "bad": fence("def f(x:\n    return")}
    with ScriptedServer(lambda req: replies[req.prompt.split("\n")[0]]) as server:
        r = run_operator(InstructionToCode(), table(instruction=["good", "bad"]), server)
    assert r.kept.column("solution").to_pylist() == ["def f(x):\n    return x * 2"]
    assert (
        r.failed.column("_error")
        .to_pylist()[0]
        .startswith("ValueError: the code does not parse: line 1")
    )
    assert r.failed.column("_raw").to_pylist() == [replies["bad"]]


def test_unit_tests_must_test_and_not_redefine():
    solution = "def f(x):\n    return x * 2\n"
    replies = {
        "ok": fence("def test_double():\n    assert f(2) == 4"),
        "none": fence("assert f(2) == 4"),
        "copy": fence("def f(x):\n    return 4\n\ndef test_double():\n    assert f(2) == 4"),
    }
    with ScriptedServer(lambda req: replies[req.prompt.split("\n")[1]]) as server:
        batch = table(instruction=list(replies), solution=[solution] * 3)
        r = run_operator(UnitTestGenerator(n_tests=2), batch, server)
        assert "Write exactly 2 pytest test functions" in server.received[0].prompt
    assert r.kept.column("tests").to_pylist()[0] == "def test_double():\n    assert f(2) == 4"
    errors = dict(
        zip(
            r.failed.column("instruction").to_pylist(),
            r.failed.column("_error").to_pylist(),
            strict=True,
        )
    )
    assert errors == {"none": "ValueError: no test function (def test_...) in the reply"}
    copy = r.kept.filter(pa.compute.equal(r.kept.column("instruction"), "copy"))
    # the model's copy of the solution is cut out: the tests run against the real one
    assert copy.column("tests").to_pylist() == ["def test_double():\n    assert f(2) == 4"]
    with ScriptedServer(lambda req: "```\n>>> f(2)\n4\n```") as server:
        r = run_operator(
            UnitTestGenerator(style="doctest"),
            table(instruction=["t"], solution=[solution]),
            server,
        )
        assert "doctest examples" in server.received[0].prompt
    assert r.kept.column("tests").to_pylist() == [">>> f(2)\n4"]


def test_enhancer_keeps_definitions():
    replies = {
        "def area(w, h):": fence(
            'def area(w: float, h: float) -> float:\n    """Area of a rectangle."""\n    return w * h'
        ),
        "def volume(w, h, d):": fence("def size(w, h, d):\n    return w * h * d"),
    }

    def responder(req: ChatRequest) -> str:
        return next(v for k, v in replies.items() if k in req.prompt)

    codes = ["def area(w, h):\n    return w * h\n", "def volume(w, h, d):\n    return w * h * d\n"]
    with ScriptedServer(responder) as server:
        r = run_operator(CodeEnhancer(add="both"), table(code=codes), server)
        assert (
            "adding type hints to every function and a concise docstring"
            in server.received[0].prompt
        )
    assert r.kept.column("code").to_pylist()[0].startswith("def area(w: float, h: float) -> float:")
    assert r.failed.column("_error").to_pylist() == [
        "ValueError: the enhanced code changed the definitions: lost ['volume'], new ['size']"
    ]


def test_quality_judge_unparseable_reply_is_a_failure_not_a_score():
    replies = {
        "def a(): pass": json.dumps({"rationale": "Fine.", "score": 4}),
        "def b(): pass": "I think it is good",
    }

    def responder(req: ChatRequest) -> str:  # re-asks end in a new user message
        first = req.messages[1]["content"]
        return next(v for k, v in replies.items() if k in first)

    with ScriptedServer(responder) as server:
        batch = table(code=list(replies), instruction=["Task A", None])
        r = run_operator(CodeQualityJudge(), batch, server, max_reasks=1)
        assert "written for this task:\n\nTask A" in server.received[0].prompt
    assert r.kept.select(["code", "score", "rationale"]).to_pylist() == [
        {"code": "def a(): pass", "score": 4.0, "rationale": "Fine."}
    ]
    assert r.failed.column("code").to_pylist() == ["def b(): pass"]


def test_crux_outputs_come_from_running_the_code():
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    code = "def f(xs, k):\n    return sorted(xs)[::-1][:k]\n"
    inputs = ["[3, 1, 2], 2", "[], 1", "'abc', 1", "[5, 4], 'x'", "open('/etc/passwd').read(), 1"]

    def responder(req: ChatRequest) -> str:
        assert "different inputs for `f`" in req.prompt
        return json.dumps({"inputs": inputs})

    async def main(server, sandbox):
        from prepflow.serving.client import OpenAIServing

        async with OpenAIServing(server.url, server.model, api_key=server.api_key) as serving:
            op = CruxEvalGenerator(n=5).bind({})
            op.setup(SimpleNamespace(serving=serving, sandbox=sandbox))
            return await op.arun_batch(table(code=[code, "x = 1\n"]))

    with ScriptedServer(responder) as server, open_sandbox(workers=1) as sandbox:
        r = asyncio.run(main(server, sandbox))
    assert r.kept.select(["input", "output"]).to_pylist() == [
        {"input": "[3, 1, 2], 2", "output": "[3, 2]"},
        {"input": "[], 1", "output": "[]"},
        {"input": "'abc', 1", "output": "['c']"},
    ]
    assert r.failed.column("_error").to_pylist() == ["the code defines no top-level function"]
