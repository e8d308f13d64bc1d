"""Try before you spend: --limit trials whose answers the full run reuses, plan estimates next to
the report's actual figures, and budgets that stop a run cleanly (resumable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prepflow.testing import ScriptedServer
from tests.helpers import prepflow

PIPELINE = (
    "name: gen\nsteps:\n"
    "  - {op: PromptedGenerator, params: {prompt: 'Say {{ text }} loudly'}, outputs: {generated: out}}\n"
)


def setup_dir(tmp_path: Path, rows: int = 30) -> Path:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "row {i}"}}\n' for i in range(rows)))
    return tmp_path


def chat_requests(server: ScriptedServer) -> int:
    return server.paths["/v1/chat/completions"]


def test_a_limit_trial_runs_apart_and_the_full_run_reuses_its_answers(tmp_path: Path):
    work = setup_dir(tmp_path)
    with ScriptedServer() as server:
        common = [
            "run",
            "p.yaml",
            "--input",
            "in.jsonl",
            "--base-url",
            server.url,
            "--model",
            "test-model",
        ]
        trial = prepflow(*common, "--output", "trial.jsonl", "--limit", "10", cwd=work)
        assert trial.returncode == 0, trial.stderr
        assert len((work / "trial.jsonl").read_text().splitlines()) == 10
        assert (work / "runs/gen-limit10/.prepflow-run").exists() and not (
            work / "runs/gen"
        ).exists()
        assert chat_requests(server) == 10
        full = prepflow(*common, "--output", "full.jsonl", cwd=work)
        assert full.returncode == 0, full.stderr
        assert chat_requests(server) == 30  # the 10 tried rows cost nothing the second time
    assert len((work / "full.jsonl").read_text().splitlines()) == 30


def test_the_report_puts_the_estimate_beside_the_actual_figures(tmp_path: Path):
    work = setup_dir(tmp_path)
    with ScriptedServer() as server:
        done = prepflow("run", "p.yaml", "--input", "in.jsonl", "--output", "o.jsonl",
                        "--base-url", server.url, "--model", "test-model", cwd=work)  # fmt: skip
        assert done.returncode == 0, done.stderr
        plan = prepflow("plan", "p.yaml", "--input", "in.jsonl", "--base-url", server.url,
                        "--model", "test-model", "--measure", "2", cwd=work)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    prompt_tokens = 30 * (sum(len(f"Say row {i} loudly") for i in range(20)) // 20 // 4)
    assert f"30 requests  {prompt_tokens:,} prompt tokens" in plan.stdout
    assert "measured: 2 requests" in plan.stdout and "time: about" in plan.stdout
    report = json.loads((work / "runs/gen/report.json").read_text())
    assert report["estimate"]["requests"] == 30 and report["llm"]["requests"] == 30
    assert "| requests | 30 | 30 |" in (work / "runs/gen/report.md").read_text()


@pytest.mark.slow
def test_a_request_budget_stops_the_run_cleanly_and_it_resumes(tmp_path: Path):
    work = setup_dir(tmp_path, rows=40)
    with ScriptedServer(latency=0.05) as server:
        common = ["run", "p.yaml", "--input", "in.jsonl", "--output", "o.jsonl", "--base-url",
                  server.url, "--model", "test-model", "--set", "serving.concurrency=2"]  # fmt: skip
        stopped = prepflow(*common, "--max-requests", "12", cwd=work)
        assert stopped.returncode == 3, stopped.stderr
        assert "stopped: the request budget is spent (12 requests)" in stopped.stderr
        assert "run the same command with a larger budget to resume" in stopped.stderr
        assert chat_requests(server) == 12 and not (work / "o.jsonl").exists()
        done = prepflow(*common, cwd=work)
        assert done.returncode == 0, done.stderr
        assert chat_requests(server) <= 40 + 2  # at most the requests in flight are asked again
    assert len((work / "o.jsonl").read_text().splitlines()) == 40


def test_a_cost_budget_needs_prices(tmp_path: Path):
    work = setup_dir(tmp_path)
    with ScriptedServer() as server:
        done = prepflow("run", "p.yaml", "--input", "in.jsonl", "--output", "o.jsonl",
                        "--base-url", server.url, "--model", "test-model", "--max-cost", "1", cwd=work)  # fmt: skip
    assert done.returncode == 2 and "--max-cost needs prices" in done.stderr
