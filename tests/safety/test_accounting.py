"""Accounting checked on the files themselves, not on the report's arithmetic: for every step of
every shipped pipeline, the rows in its shard files plus its dropped and failed rows are exactly
the rows of its upstream shards (by ``_id``), and the report agrees with the files; LLM request
counts agree with the cache and with the test server's own log. Also after a kill and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from prepflow.data import shardfile
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ScriptedServer
from tests.engine.shipped import _responder, cases

from .conftest import commits, start, wait_for


def ids(run: Path, kind: str, step_dir: str) -> Counter[int]:
    files = sorted((run / kind / step_dir).glob("shard-*.arrow"))
    return Counter(i for f in files for i in shardfile.read(f).select(["_id"])["_id"].to_pylist())


def audit(run: Path, input_lines: int | None = None) -> None:
    """Assert that every row of every step is accounted for, from the files."""
    report = json.loads((run / "report.json").read_text())
    upstream = "00-input"
    quarantined = sum(
        len(f.read_text().splitlines()) for f in (run / "quarantine").glob("shard-*.jsonl")
    )
    if input_lines is not None:
        assert sum(ids(run, "steps", upstream).values()) + quarantined == input_lines
    assert report["quarantined"] == quarantined
    for step in report["steps"]:
        here = step["dir"]
        parents = ids(run, "steps", upstream)
        kept, dropped, failed = (ids(run, k, here) for k in ("steps", "dropped", "failures"))
        label = f"{run.name} step {step['index']} {step['name']}"
        if step["kind"] == "generate":  # fan-out: each parent gives rows, is dropped or fails
            assert set(parents) == set(kept) | set(dropped) | set(failed), label
        else:
            assert parents == kept + dropped + failed, label
        assert (step["rows_in"], step["rows_out"], step["dropped"], step["failed"]) == (
            sum(parents.values()),
            sum(kept.values()),
            sum(dropped.values()),
            sum(failed.values()),
        ), label
        upstream = here


def cache_rows(run: Path) -> int:
    with sqlite3.connect(run / "llm_cache.sqlite") as db:
        return db.execute("SELECT count(*) FROM responses").fetchone()[0]


@pytest.mark.parametrize("case", [c for c in cases() if c.responder], ids=lambda c: c.key)
def test_every_row_of_every_llm_pipeline_is_in_the_files(case, tmp_path: Path):
    spec = load_yaml(case.pipeline)
    with ScriptedServer(_responder(case.responder)) as server:
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        run = tmp_path / "run"
        report = run_pipeline(
            spec, input=case.input, output=tmp_path / "o.jsonl", run_dir=run, progress=False
        )
        http_requests = server.requests - server.paths["/v1/models"]  # compile's reachability
        answers = len(server.received)
    audit(run, input_lines=len(case.input.read_text().splitlines()))
    assert report.llm["requests"] == http_requests  # the client's count is the server's
    assert report.llm["retries"] == report.llm["reasks"] == 0
    assert cache_rows(run) == answers  # every answer (chat or embedded text) was cached, once


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in cases() if not c.responder][:4], ids=lambda c: c.key)
def test_every_row_of_text_pretrain_clean_is_in_the_files(case, tmp_path: Path, shared_data: Path):
    run = tmp_path / "run"
    run_pipeline(load_yaml(case.pipeline), input=case.input, output=tmp_path / "o.parquet", run_dir=run, progress=False, shard_rows=1000)  # fmt: skip
    audit(run, input_lines=len(case.input.read_text().splitlines()))


@pytest.mark.slow
def test_accounting_holds_after_a_kill_and_resume(tmp_path: Path, shared_data: Path):
    src = shared_data / "corpora" / "fortunes_en.jsonl"
    args = ["run", "text-pretrain-clean", "--input", src, "--output", "o.parquet", "--run-dir", "r",
            "--shard-rows", "500", "--workers", "2"]  # fmt: skip
    proc = start(*args, cwd=tmp_path)
    wait_for(lambda: len([e for e in commits(tmp_path / "r") if e.step == 5]) >= 3, what="progress")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "r" / "report.json").exists()
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "prepflow.cli", *map(str, args)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    audit(tmp_path / "r", input_lines=len(src.read_text().splitlines()))
