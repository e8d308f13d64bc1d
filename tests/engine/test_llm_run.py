"""LLM steps through the engine against the scripted server: overlap, faults, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prepflow.data import shardfile
from prepflow.engine.runner import retry_run, run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ChatRequest, ScriptedServer


def answer(req: ChatRequest) -> str:
    """Answers the original question (a re-ask appends a correction as the last message)."""
    first = next(m["content"] for m in req.messages if m["role"] == "user")
    return f"answer to <{first}>"


def spec_text(url: str, concurrency: int = 16) -> str:
    return f"""
name: llm
serving: {{backend: openai, base_url: "{url}", model: test-model, concurrency: {concurrency},
          max_retries: 6, timeout_s: 2}}
steps:
  - op: PromptedGenerator
    name: gen
    params: {{prompt: "Q: {{{{ question }}}}"}}
    outputs: {{generated: answer}}
  - {{op: ExpressionFilter, name: nonempty, params: {{expr: "len(answer) > 0"}}}}
"""


#: every fault but "invalid", which only breaks structured output (this step asks for free text)
TEXT_FAULTS = ("rate_limit", "server_error", "timeout", "reset", "malformed", "truncated")


def questions(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "q.jsonl"
    src.write_text("".join(json.dumps({"question": f"question {i}"}) + "\n" for i in range(n)))
    return src


def test_llm_step_overlaps_shards_and_reports_usage(tmp_path: Path) -> None:
    src = questions(tmp_path, 60)
    with ScriptedServer(answer, latency=0.05) as server:
        rep = run_pipeline(
            load_yaml(spec_text(server.url)),
            input=src,
            output=tmp_path / "o.jsonl",
            run_dir=tmp_path / "run",
            shard_rows=10,
            progress=False,
        )
        # 6 shards of 10 rows with a concurrency of 16: requests of different shards overlap
        assert server.peak_active > 10
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows == [
        {"question": f"question {i}", "answer": f"answer to <Q: question {i}>"} for i in range(60)
    ]
    assert rep.llm["requests"] == 60 and rep.llm["cache_hits"] == 0
    # a re-run of the finished run sends nothing (no step is even recomputed)
    with ScriptedServer(answer) as server:
        spec = load_yaml(spec_text(server.url))
        rep = run_pipeline(
            spec,
            input=src,
            output=tmp_path / "o.jsonl",
            run_dir=tmp_path / "run",
            shard_rows=10,
            progress=False,
        )
        assert server.count() == 0 and rep.computed_shards == 0


@pytest.mark.slow
def test_faults_leave_every_row_a_result_or_a_failure(tmp_path: Path) -> None:
    n = 200
    src = questions(tmp_path, n)
    with ScriptedServer(
        answer, fault_rate=0.3, retry_after=0.05, hang_s=5, seed=7, faults=TEXT_FAULTS
    ) as server:
        rep = run_pipeline(
            load_yaml(spec_text(server.url, concurrency=32)),
            input=src,
            output=tmp_path / "o.jsonl",
            run_dir=tmp_path / "run",
            shard_rows=50,
            progress=False,
            max_failure_rate=1.0,
        )
        assert sum(server.injected.values()) > 30
    gen = rep.steps[0]
    assert gen["rows_in"] == n == gen["kept"] + gen["failed"]
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert all(r["answer"] == f"answer to <Q: {r['question']}>" for r in out)  # never null
    failed = [
        r
        for p in sorted((tmp_path / "run" / "failures").rglob("*.arrow"))
        for r in shardfile.read(p).to_pylist()
    ]
    assert len(failed) == gen["failed"]
    assert all(r["_error_type"] and r["_error"] for r in failed)
    seen = sorted([r["question"] for r in out] + [r["question"] for r in failed])
    assert seen == sorted(f"question {i}" for i in range(n))


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [25])
def test_sigkill_with_requests_in_flight_then_resume_pays_once(
    tmp_path: Path, kill_after: int
) -> None:
    n = 120
    src = questions(tmp_path, n)
    with ScriptedServer(answer, latency=0.2) as server:
        yaml_path = tmp_path / "p.yaml"
        yaml_path.write_text(spec_text(server.url, concurrency=8))
        cmd = [
            sys.executable,
            "-m",
            "prepflow.cli",
            "run",
            str(yaml_path),
            "--input",
            str(src),
            "--output",
            str(tmp_path / "o.jsonl"),
            "--run-dir",
            str(tmp_path / "run"),
            "--shard-rows",
            "10",
            "--no-progress",
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.time() + 60
        while server.count() < kill_after and time.time() < deadline:
            time.sleep(0.01)
        assert server.active > 0, "requests should be in flight at the kill"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        first = server.count()
        assert first < n
        subprocess.run(cmd, check=True, capture_output=True)
        # every distinct prompt was paid for exactly once, across the kill (no faults injected)
        per_prompt = [server.count(f"Q: question {i}") for i in range(n)]
        unanswered_at_kill = sum(1 for c in per_prompt if c == 2)
        assert all(c in (1, 2) for c in per_prompt)
        assert unanswered_at_kill <= 8  # only requests in flight at the kill are sent again
        assert server.count() == n + unanswered_at_kill
        before = server.count()
        subprocess.run(cmd, check=True, capture_output=True)
        assert server.count() == before  # a finished run re-run sends zero requests
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["question"] for r in out] == [f"question {i}" for i in range(n)]


def test_retry_resends_only_rows_whose_answers_were_unusable(tmp_path: Path) -> None:
    n, broken = 30, {"question 3", "question 17"}

    def number(req: ChatRequest) -> str:
        first = next(m["content"] for m in req.messages if m["role"] == "user")
        return "sorry" if first.removeprefix("Q: ") in broken else f'{{"n": {len(first)}}}'

    spec = (
        spec_text("URL")
        .replace(
            'params: {prompt: "Q: {{ question }}"}\n    outputs: {generated: answer}',
            'params: {prompt: "Q: {{ question }}", fields: {n: int}}',
        )
        .replace('"len(answer) > 0"', '"n > 0"')
    )
    with ScriptedServer(number) as server:
        run_dir = tmp_path / "run"
        first = run_pipeline(
            load_yaml(spec.replace("URL", server.url)),
            input=questions(tmp_path, n),
            output=tmp_path / "o.jsonl",
            run_dir=run_dir,
            shard_rows=10,
            progress=False,
            max_failure_rate=1.0,
        )
        assert first.steps[0]["failed"] == 2
        assert server.count() == n + 2 * 2  # each broken row: the question and 2 re-asks
        broken.clear()  # the model behaves now
        sent = server.count()
        second = retry_run(run_dir)
        assert server.count() - sent == 2  # only the failed rows are asked again
    assert (second.steps[0]["kept"], second.steps[0]["failed"]) == (n, 0)
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(out) == n and all(r["n"] == len("Q: " + r["question"]) for r in out)


def test_rows_stream_to_the_next_llm_step_without_waiting_for_slow_answers(
    tmp_path: Path,
) -> None:
    from prepflow.testing import Reply

    def slow_first(req: ChatRequest) -> str | Reply:
        reply = answer(req)
        return Reply(reply, delay=0.6) if req.prompt == "Q: question 0" else reply

    spec = spec_text("URL").replace(
        "  - {op: ExpressionFilter",
        '  - op: PromptedGenerator\n    name: follow_up\n    params: {prompt: "R: {{ answer }}"}\n'
        "    outputs: {generated: again}\n  - {op: ExpressionFilter",
    )
    src = questions(tmp_path, 8)
    with ScriptedServer(slow_first, latency=0.01) as server:
        rep = run_pipeline(
            load_yaml(spec.replace("URL", server.url)),
            input=src,
            output=tmp_path / "o.jsonl",
            run_dir=tmp_path / "run",
            shard_rows=8,  # one shard: without streaming, no follow-up before row 0's answer
            progress=False,
        )
        slow_sent = server.times("Q: question 0")[0]
        follow_ups = [server.times(f"R: answer to <Q: question {i}>")[0] for i in range(8)]
    assert min(follow_ups[4:]) < slow_sent + 0.4  # rows 4-7 moved on while row 0 waited
    assert follow_ups[0] > slow_sent + 0.6
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["question"] for r in rows] == [f"question {i}" for i in range(8)]  # input order
    assert rows[3]["again"] == "answer to <R: answer to <Q: question 3>>"
    assert [s["rows_out"] for s in rep.steps] == [8, 8, 8]


def test_rows_of_a_step_that_reads_its_whole_shard_still_move_on_one_by_one(
    tmp_path: Path,
) -> None:
    """QuestionSynthesizer pairs each seed with the next, so it starts on its whole shard; the
    follow-up of each new problem is still sent as soon as that problem is in."""
    from prepflow.testing import Reply

    def respond(req: ChatRequest) -> str | Reply:
        if req.prompt.startswith("R: "):
            return "ok"
        seed = req.prompt.split("Seed problem:\n")[1].split("\n")[0]
        return Reply(f"new {seed}", delay=0.6 if seed == "question 0" else 0.0)

    spec = """
name: pairs
serving: {backend: openai, base_url: URL, model: test-model, concurrency: 16}
steps:
  - op: QuestionSynthesizer
    name: synth
    params: {n: 1, variations: [numbers], keep_seed: false}
  - op: PromptedGenerator
    name: follow_up
    params: {prompt: "R: {{ question }}"}
    outputs: {generated: again}
"""
    with ScriptedServer(respond, latency=0.01) as server:
        rep = run_pipeline(
            load_yaml(spec.replace("URL", f'"{server.url}"')),
            input=questions(tmp_path, 8),
            output=tmp_path / "o.jsonl",
            run_dir=tmp_path / "run",
            shard_rows=8,  # one shard, so the synthesizer sees all 8 seeds at once
            progress=False,
        )
        slow_sent = next(r.at for r in server.received if "question 0\n" in r.prompt)
        follow_ups = [server.times(f"R: new question {i}")[0] for i in range(8)]
    assert max(follow_ups[1:]) < slow_sent + 0.4  # rows 1-7 moved on while row 0 waited
    assert follow_ups[0] > slow_sent + 0.6
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["question"] for r in rows] == [f"new question {i}" for i in range(8)]  # in order
    assert [s["rows_out"] for s in rep.steps] == [8, 8]
