"""The shipped text-pretrain-synth pipeline end to end against the scripted server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ChatRequest, ScriptedServer

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "examples" / "pretrain_docs.jsonl"


def first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".") + "."


def responder(req: ChatRequest) -> str:
    p = req.prompt
    if p.startswith("Rewrite the document"):
        doc = p.split("Document:\n")[1].split("\n\nReply with")[0]
        pairs = [{"question": "What does the text say first?", "answer": first_sentence(doc)}]
        return json.dumps({"pairs": pairs})
    if p.startswith("Check whether"):
        unsupported = "lock" in p.split("Source document:\n")[1].split("\n\nRewrite:")[0]
        reply = (
            {"rationale": "invented", "score": 2}
            if unsupported
            else {"rationale": "ok", "score": 5}
        )
        return json.dumps(reply)
    raise AssertionError(f"unexpected prompt {p[:60]!r}")


def test_text_pretrain_synth_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "synth.jsonl"
    spec = load_yaml("text-pretrain-synth")
    with ScriptedServer(responder) as server:
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        rep = run_pipeline(spec, input=DOCS, output=out, run_dir=tmp_path / "run", progress=False)
        assert not server.responder_errors
    docs = [json.loads(line) for line in DOCS.read_text().splitlines()]
    faithful = [d for d in docs if "lock" not in d["text"]]
    assert 0 < len(faithful) < len(docs)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {
            **d,
            "synthetic": "Question: What does the text say first?\n"
            f"Answer: {first_sentence(d['text'])}",
        }
        for d in faithful
    ]
    faith = rep.steps[1]
    assert faith["dropped"] == len(docs) - len(faithful) and faith["failed"] == 0


@pytest.mark.slow
def test_text_pretrain_synth_with_the_embedded_model(tmp_path: Path) -> None:
    """Two documents through the real pipeline on the default catalog model (llama.cpp, CPU).

    The 135M model cannot keep to the JSON of QA pairs (it repeats itself to the token limit), so
    this uses the 0.5B default that the shipped pipelines are meant for."""
    pytest.importorskip("xllamacpp")
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(DOCS.read_text().splitlines(keepends=True)[:2]))
    spec = load_yaml("text-pretrain-synth")
    spec.serving = {
        "backend": "llamacpp",
        "model": "qwen2.5-coder-0.5b-instruct",
        "generation": {"max_tokens": 320, "temperature": 0},
    }
    rep = run_pipeline(
        spec,
        input=src,
        output=tmp_path / "o.jsonl",
        run_dir=tmp_path / "run",
        overrides=["rewrite.items=1"],
        progress=False,
        max_failure_rate=1.0,
    )
    for step in rep.steps:  # a weak model may fail or drop rows, but every row is accounted for
        assert step["rows_in"] == step["kept"] + step["dropped"] + step["failed"]
    assert rep.steps[0]["kept"] > 0  # the model rewrote at least one document
    assert rep.llm["requests"] > 0
