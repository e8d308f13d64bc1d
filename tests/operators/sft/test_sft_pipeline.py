"""The shipped text-sft-synth pipeline end to end against the scripted server."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from prepflow.data import shardfile
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ChatRequest, ScriptedServer

REPO = Path(__file__).resolve().parents[3]
SEEDS = REPO / "examples" / "sft_seeds.jsonl"
COMMON = "Name three primary colors."


def responder(req: ChatRequest) -> str:
    p = req.prompt
    if p.startswith("Come up with"):
        seed = p.split("example task:\n\n")[1].split("\n\nRequirements")[0]
        return json.dumps({"items": [f"Variant A of: {seed}", f"Variant B of: {seed}", COMMON]})
    if p.startswith("Rate the response"):
        response = p.split("Response:\n")[1]
        good = response.startswith(("Answer to", "Improved"))
        return json.dumps({"rationale": "fine" if good else "no answer", "score": 5 if good else 2})
    if p.startswith("The response below"):
        return "Still unsure." if "haiku" in p else "Improved answer."
    if p.startswith("Rate how complex"):
        return json.dumps({"rationale": "a few steps", "score": 3})
    if p.startswith("Variant B"):
        return "I don't know."
    return f"Answer to: {p}"


def dropped_reasons(run_dir: Path, step: str) -> list[str]:
    files = sorted((run_dir / "dropped").glob(f"*-{step}/*.arrow"))
    return [r for f in files for r in shardfile.read(f).column("_reason").to_pylist()]


def test_text_sft_synth_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "sft.jsonl"
    spec = load_yaml("text-sft-synth")
    with ScriptedServer(responder) as server:
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        rep = run_pipeline(spec, input=SEEDS, output=out, run_dir=tmp_path / "run", progress=False)
        assert not server.responder_errors
    steps = {s["name"]: s for s in rep.steps}
    n_seeds = len(SEEDS.read_text().splitlines())
    assert steps["synthesize"]["rows_out"] == 3 * n_seeds
    assert steps["dedup"]["dropped"] == n_seeds - 1  # COMMON is kept once
    assert steps["rewrite"]["rows_in"] == 2 * n_seeds + 1
    # the weak 'Variant B' answers were rewritten; only the haiku rewrite is still weak
    assert steps["quality"]["drop_reasons"] == {"min_score: score < 4": 1}  # grouped
    assert dropped_reasons(tmp_path / "run", "quality") == ["min_score: score=2 < 4; no answer"]
    survivors = 2 * n_seeds
    assert steps["select"]["rows_in"] == survivors
    assert steps["select"]["kept"] == math.ceil(survivors / 2)
    reasons = dropped_reasons(tmp_path / "run", "select")
    assert len(reasons) == survivors - math.ceil(survivors / 2)
    assert all(
        re.fullmatch(r"not selected \(nearest selected _id \d, distance 0\.\d+\)", reason)
        for reason in reasons
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == math.ceil(survivors / 2)
    for row in rows:
        assert "embedding" not in row
        assert row["score"] == 5 and row["complexity"] == 3
        assert row["messages"] == [
            {"role": "user", "content": row["instruction"]},
            {"role": "assistant", "content": row["response"]},
        ]
        expected = "Improved answer." if row["instruction"].startswith("Variant B") else None
        assert row["response"] == (expected or f"Answer to: {row['instruction']}")


@pytest.mark.slow
def test_text_sft_synth_with_the_embedded_model(tmp_path: Path) -> None:
    """Two seeds through the real pipeline on the smallest catalog model (llama.cpp on CPU)."""
    pytest.importorskip("xllamacpp")
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(SEEDS.read_text().splitlines(keepends=True)[:2]))
    spec = load_yaml("text-sft-synth")
    spec.serving = {
        "backend": "llamacpp",
        "model": "smollm2-135m-instruct",
        "generation": {"max_tokens": 256, "temperature": 0},
    }
    # greedy decoding everywhere (the shipped synthesize step samples at 0.8) so that the run is
    # repeatable; min_score 1 lets every judged pair reach the embeddings
    overrides = ["synthesize.n=2", "synthesize.generation={temperature: 0}", "quality.min_score=1"]
    rep = run_pipeline(
        spec,
        input=seeds,
        output=tmp_path / "o.jsonl",
        run_dir=tmp_path / "run",
        overrides=overrides,
        progress=False,
        max_failure_rate=1.0,
    )
    for step in rep.steps:  # a weak model may fail or drop rows, but every row is accounted for
        assert step["rows_in"] == step["kept"] + step["dropped"] + step["failed"]
    by_name = {s["name"]: s for s in rep.steps}
    assert by_name["synthesize"]["rows_out"] > 0 and by_name["respond"]["kept"] > 0
    assert rep.llm["requests"] > 0
    # the embedded server answers chat and embeddings alike, so diversity selection runs too
    # (tests/serving/test_launchers.py checks the embeddings themselves)
    embed = by_name["embed"]
    assert embed["failed"] == 0 and embed["kept"] == embed["rows_in"]
    assert by_name["select"]["kept"] == math.ceil(embed["rows_in"] / 2)  # fraction 0.5
