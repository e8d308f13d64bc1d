"""The shipped reasoning-math pipeline end to end against the scripted server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ChatRequest, ScriptedServer

ROOT = Path(__file__).resolve().parents[3]
SEEDS = ROOT / "examples" / "math_seeds.jsonl"
PIPELINE = ROOT / "prepflow" / "pipelines" / "reasoning-math.yaml"


def seeds() -> list[dict]:
    return [json.loads(line) for line in SEEDS.read_text().splitlines()]


def after(marker: str, text: str) -> str:
    return text.split(marker, 1)[1].split("\n", 1)[0]


def responder(req: ChatRequest) -> str:
    """A model that: passes every problem except 'constraint' variants; answers seed 0 wrongly,
    seed 1 without a box, the other seeds right and every variant with 1."""
    prompt = req.messages[-1]["content"]
    refs = {s["question"]: s["answer"] for s in seeds()}
    if prompt.startswith("Check whether"):
        ok = "(constraint)" not in prompt
        verdict = {"well_posed": ok, "self_contained": True, "solvable": True, "reason": "r"}
        return json.dumps(verdict)
    if prompt.startswith("Write a new math problem"):
        kind = "constraint" if "extra condition" in prompt else "numbers"
        return f"({kind}) variant of: {after('Seed problem:' + chr(10), prompt)}"
    if prompt.startswith("Classify"):
        return json.dumps({"difficulty": "easy", "category": "other"})
    question = after("Problem:\n", prompt)
    if question not in refs:
        return "Step one. Step two gives \\boxed{1}."
    if question == seeds()[0]["question"]:
        return "Adding up gives \\boxed{15}."
    if question == seeds()[1]["question"]:
        return "He fills eight boxes."
    ref = refs[question]
    final = (
        ref.split("####")[1].strip().replace(",", "")
        if "####" in ref
        else re.sub(r".*\\boxed\{(.*)\}\$?\.?$", r"\1", ref)
    )
    return f"Working it out carefully, the result is \\boxed{{{final}}}."


def spec_for(url: str):
    spec = yaml.safe_load(PIPELINE.read_text())
    spec["serving"] = {"backend": "openai", "base_url": url, "model": "test-model"}
    return load_yaml(yaml.safe_dump(spec))


def test_reasoning_math_pipeline_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    kw = dict(input=SEEDS, output=out, run_dir=tmp_path / "run", progress=False)
    with ScriptedServer(responder) as server:
        rep = run_pipeline(spec_for(server.url), **kw)
        assert server.responder_errors == []
    n = len(seeds())
    steps = {s["name"]: s for s in rep.steps}
    assert steps["filter_seeds"]["kept"] == n
    assert steps["synthesize"]["rows_out"] == 3 * n
    assert steps["filter_synthetic"]["dropped"] == n  # the constraint variants
    assert steps["answer_format"]["drop_reasons"] == {"no \\boxed{} answer": 1}
    assert steps["ground_truth"]["dropped"] == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 * n - 2
    by_kind = {k: [r for r in rows if r["variation"] == k] for k in ("seed", "numbers")}
    assert len(by_kind["seed"]) == n - 2 and len(by_kind["numbers"]) == n
    assert all(r["reference"] == "" and r["final_answer"] == "1" for r in by_kind["numbers"])
    assert all(r["messages"][0] == {"role": "user", "content": r["question"]} for r in rows)
    assert all(r["agreement"] == 1.0 for r in rows)
    # a re-run of the finished run asks the model nothing
    with ScriptedServer(responder) as server:
        run_pipeline(spec_for(server.url), **kw)
        assert server.count() == 0


@pytest.mark.slow
def test_reasoning_math_on_the_embedded_model(tmp_path: Path) -> None:
    """The shipped pipeline on the embedded llama.cpp model, kept short (2 seeds, one new problem
    each, one solution per problem): the whole pipeline runs on a real model; its yield is
    measured in benchmarks/reasoning_math.py --embedded."""
    pytest.importorskip("xllamacpp")
    src = tmp_path / "seeds.jsonl"
    src.write_text("".join(line + "\n" for line in SEEDS.read_text().splitlines()[:2]))
    rep = run_pipeline(
        load_yaml(PIPELINE.read_text()),
        input=src,
        output=tmp_path / "o.jsonl",
        run_dir=tmp_path / "run",
        overrides=["synthesize.n=1", "solve.samples=1", "solve.generation.max_tokens=384"],
        progress=False,
        max_failure_rate=1.0,
    )
    first = rep.steps[0]
    assert first["rows_in"] == 2
    for s in rep.steps:
        assert s["rows_in"] == s["kept"] + s["dropped"] + s["failed"]
    assert rep.llm["requests"] > 0
