"""SFT LLM operators against the scripted OpenAI-compatible server (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa

from prepflow.operators.sft.diversity import EmbedText, KCenterSelect
from prepflow.operators.sft.judges import ComplexityScorer, QualityJudge, ResponseRewriter
from prepflow.operators.sft.synthesis import InstructionSynthesizer, ResponseGenerator
from prepflow.serving.errors import ServerError
from prepflow.testing import ChatRequest, FakeContext, ScriptedServer, embed_text, run_operator


def table(**columns: list) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"_id": pa.array(range(n), pa.int64()), **columns})


def test_instruction_synthesizer_fans_out_from_each_seed() -> None:
    def responder(req: ChatRequest) -> str:
        seed = "haiku" if "Write a haiku" in req.prompt else "sum"
        return json.dumps({"items": [f"{seed} task A", f"{seed} task B"]})

    batch = table(seed=["Write a haiku about rain.", "Sum the numbers 1 to 10."])
    with ScriptedServer(responder) as server:
        r = run_operator(InstructionSynthesizer(n=2), batch, server)
        assert server.count() == 2
        sent = server.received[0].body
    assert r.kept.select(["_id", "seed", "instruction"]).to_pylist() == [
        {"_id": 0, "seed": "Write a haiku about rain.", "instruction": "haiku task A"},
        {"_id": 0, "seed": "Write a haiku about rain.", "instruction": "haiku task B"},
        {"_id": 1, "seed": "Sum the numbers 1 to 10.", "instruction": "sum task A"},
        {"_id": 1, "seed": "Sum the numbers 1 to 10.", "instruction": "sum task B"},
    ]
    assert "Come up with 2 new task instructions" in sent["messages"][-1]["content"]
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["items"]["minItems"] == 2


def test_instruction_synthesizer_wrong_count_is_a_failure() -> None:
    with ScriptedServer(lambda req: json.dumps({"items": ["only one"]})) as server:
        r = run_operator(InstructionSynthesizer(n=2), table(seed=["x"]), server, max_reasks=1)
    assert r.kept.num_rows == 0 and r.failed.column("_id").to_pylist() == [0]


def test_response_generator_answers_and_unwraps_fences() -> None:
    replies = {"Say hi.": "Hi!", "Print 1 in Python.": "```python\nprint(1)\n```", "Nothing.": " "}
    batch = table(instruction=list(replies))
    with ScriptedServer(lambda req: replies[req.prompt]) as server:
        r = run_operator(ResponseGenerator(system_prompt="Be brief."), batch, server)
        assert server.received[0].body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert r.kept.column("response").to_pylist() == ["Hi!", "print(1)"]
    assert r.failed.column("_id").to_pylist() == [2]
    assert r.failed.column("_error").to_pylist() == ["ValueError: empty reply"]


def judge(req: ChatRequest) -> str:
    """Scores 5 when the response contains the word 'correct', else 2."""
    good = "correct" in req.prompt.split("Response:")[-1]
    return json.dumps({"rationale": "right" if good else "wrong", "score": 5 if good else 2})


def test_quality_judge_scores_with_rationale() -> None:
    batch = table(instruction=["2+2?", "3+3?"], response=["4, correct", "7"])
    with ScriptedServer(judge) as server:
        r = run_operator(QualityJudge(), batch, server)
        prompt = server.received[0].prompt
    assert r.kept.select(["score", "rationale"]).to_pylist() == [
        {"score": 5.0, "rationale": "right"},
        {"score": 2.0, "rationale": "wrong"},
    ]
    assert "Instruction:\n2+2?\n\nResponse:\n4, correct" in prompt
    assert "score from 1 (worst) to 5 (best)" in prompt


def test_quality_judge_out_of_scale_score_fails_the_row() -> None:
    reply = json.dumps({"rationale": "great", "score": 9})
    with ScriptedServer(lambda req: reply) as server:
        r = run_operator(QualityJudge(), table(instruction=["a"], response=["b"]), server)
    assert r.kept.num_rows == 0
    assert r.failed.column("_error_type").to_pylist() == ["InvalidOutput"]


def test_complexity_scorer_writes_its_own_columns() -> None:
    def responder(req: ChatRequest) -> str:
        hard = "proof" in req.prompt
        return json.dumps(
            {"rationale": "many steps" if hard else "one step", "score": 4 if hard else 1}
        )

    batch = table(instruction=["Say hi.", "Write a proof that sqrt 2 is irrational."])
    with ScriptedServer(responder) as server:
        r = run_operator(ComplexityScorer(), batch, server)
    assert r.kept.select(["complexity", "complexity_rationale"]).to_pylist() == [
        {"complexity": 1.0, "complexity_rationale": "one step"},
        {"complexity": 4.0, "complexity_rationale": "many steps"},
    ]


def test_response_rewriter_rewrites_only_weak_rows() -> None:
    batch = table(
        instruction=["2+2?", "3+3?"],
        response=["4", "7"],
        score=[5.0, 2.0],
        rationale=["right", "3+3 is 6, not 7"],
    )
    with ScriptedServer(lambda req: "6") as server:
        r = run_operator(ResponseRewriter(below=4), batch, server)
        assert server.count() == 1
        assert "The judge said: 3+3 is 6, not 7" in server.received[0].prompt
    assert r.kept.column("response").to_pylist() == ["4", "6"]
    assert r.kept.column_names == batch.column_names


def test_embed_text_vectors_and_null_rows() -> None:
    batch = table(text=["alpha", None, "beta"])
    with ScriptedServer(embed_dim=4) as server:
        r = run_operator(EmbedText(), batch, server)
        assert server.count() == 2
    expected = [embed_text(t, 4) for t in ("alpha", "beta")]
    assert r.kept.column("_id").to_pylist() == [0, 2]
    assert r.kept.column("embedding").to_pylist() == expected  # k/256 is exact in float32
    assert r.failed.column("_id").to_pylist() == [1]
    assert r.failed.column("_error").to_pylist() == ["column 'text' is null"]


def test_embed_text_refused_fails_rows_and_keeps_the_schema() -> None:
    """A server that refuses embeddings (llama.cpp without --embeddings answers 501)."""

    class Refusing:
        async def embed(self, texts: list[str]) -> list[list[float]]:
            raise ServerError("HTTP 501: This server does not support embeddings")

    op = EmbedText()
    op.setup(FakeContext(serving=Refusing()))
    r = asyncio.run(op.arun_batch(table(text=["alpha", "beta"])))
    assert r.kept.num_rows == 0 and r.kept.column_names == ["_id", "text", "embedding"]
    assert r.failed.column("_error_type").to_pylist() == ["ServerError", "ServerError"]
    # the selection step after it accepts the empty shard
    select = KCenterSelect(k=1)
    select.fit([r.kept])
    assert select.run_batch(r.kept).kept.num_rows == 0
