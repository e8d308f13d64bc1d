"""Pretraining synthesis operators against the scripted OpenAI-compatible server."""

from __future__ import annotations

import json

import pyarrow as pa

from prepflow.operators.text.synth import DocumentRewriter, FaithfulnessFilter
from prepflow.testing import ChatRequest, ScriptedServer, run_operator

DOC = "The Nile flows north into the Mediterranean Sea."


def docs(**columns: list) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"_id": pa.array(range(n), pa.int64()), **columns})


def test_rewrite_as_qa_pairs() -> None:
    reply = {
        "pairs": [
            {"question": "Which way does the Nile flow?", "answer": "North."},
            {"question": "Where does the Nile end?", "answer": "In the Mediterranean Sea."},
        ]
    }
    with ScriptedServer(lambda req: json.dumps(reply)) as server:
        r = run_operator(DocumentRewriter(items=2), docs(text=[DOC]), server)
        prompt = server.received[0].prompt
    assert r.kept.column("synthetic").to_pylist() == [
        "Question: Which way does the Nile flow?\nAnswer: North.\n\n"
        "Question: Where does the Nile end?\nAnswer: In the Mediterranean Sea."
    ]
    assert r.kept.column("text").to_pylist() == [DOC]
    assert prompt.startswith("Rewrite the document below as 2 question-answer pairs")
    assert prompt.endswith('{"pairs": [{"question": "...", "answer": "..."}, ...]}')
    assert f"Document:\n{DOC}\n" in prompt


def test_rewrite_as_dialogue_and_invalid_reply_fails() -> None:
    def responder(req: ChatRequest) -> str:
        if "Nile" not in req.prompt:
            return json.dumps({"turns": [{"speaker": "Student", "text": "Hi"}]})  # < 2 turns
        turns = [
            {"speaker": "Student", "text": "Where does the Nile go?"},
            {"speaker": "Teacher", "text": "North, into the Mediterranean Sea."},
        ]
        return json.dumps({"turns": turns})

    op = DocumentRewriter(style="dialogue", items=2)
    with ScriptedServer(responder) as server:
        r = run_operator(op, docs(text=[DOC, "Other."]), server, max_reasks=1)
    assert r.kept.column("synthetic").to_pylist() == [
        "Student: Where does the Nile go?\nTeacher: North, into the Mediterranean Sea."
    ]
    assert r.failed.column("_id").to_pylist() == [1]
    assert r.failed.column("_error_type").to_pylist() == ["InvalidOutput"]


def test_faithfulness_filter_drops_unsupported_rewrites() -> None:
    def responder(req: ChatRequest) -> str:
        rewrite = req.prompt.split("Rewrite:\n")[1]
        if "south" in rewrite:
            return json.dumps({"rationale": "the source says north", "score": 1})
        return json.dumps({"rationale": "all supported", "score": 5})

    batch = docs(
        text=[DOC, DOC],
        synthetic=["Q: Which way? A: North.", "Q: Which way? A: south."],
    )
    op = FaithfulnessFilter().bind({"source": "text", "text": "synthetic"})
    with ScriptedServer(responder) as server:
        r = run_operator(op, batch, server)
        assert f"Source document:\n{DOC}\n" in server.received[0].prompt
    assert r.kept.column("_id").to_pylist() == [0]
    assert r.dropped.column("_reason").to_pylist() == [
        "threshold: score=1 < 4; the source says north"
    ]
