"""Kills and signals: nothing of a run survives a SIGKILL; SIGINT/SIGTERM stop it cleanly with a
message that says how to resume, and resuming gives the uninterrupted output."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from .conftest import cli, commits, slow_pipeline, start, wait_for


def big_input(path: Path, rows: int) -> Path:
    path.write_text("".join(json.dumps({"text": f"row {i} " * 3}) + "\n" for i in range(rows)))
    return path


@pytest.mark.slow
def test_no_process_of_a_run_survives_a_sigkill_of_the_main_process(work: Path):
    # 60,000 rows in shards of 10,000 and a CPU-heavy step: worker processes are started
    src = big_input(work / "in.jsonl", 60_000)
    run = start(
        "run", slow_pipeline(work / "p.yaml", sleep_s=2.0), "--input", src, "--output", "o.jsonl",
        "--shard-rows", "10000", "--workers", "2", cwd=work,
    )  # fmt: skip
    main = psutil.Process(run.pid)
    wait_for(lambda: len(main.children(recursive=True)) >= 2, what="worker processes")
    time.sleep(0.5)
    family = main.children(recursive=True)
    assert family, "the run started no worker processes"
    os.kill(run.pid, signal.SIGKILL)  # the main process only, not its group
    run.wait()

    def gone() -> bool:
        return not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    wait_for(gone, timeout=15, what="workers to die with their parent")


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_stop_cleanly_and_the_run_resumes(work: Path, sig: int, code: int):
    src = big_input(work / "in.jsonl", 3000)
    pipeline = slow_pipeline(work / "p.yaml", sleep_s=0.1)
    args = ["run", pipeline, "--input", src, "--shard-rows", "100", "--workers", "1"]
    reference = cli(*args, "--output", "ref.jsonl", "--run-dir", "ref", cwd=work)
    assert reference.returncode == 0, reference.stderr
    run = start(*args, "--output", "o.jsonl", "--run-dir", "r", cwd=work)
    wait_for(lambda: len([e for e in commits(work / "r") if e.step > 0]) >= 4, what="commits")
    os.kill(run.pid, sig)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == code, stderr
    assert f"interrupted by {signal.Signals(sig).name}" in stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    assert not (work / "o.jsonl").exists()
    finished = {(e.step, e.shard) for e in commits(work / "r") if e.step > 0}
    assert 0 < len(finished) < 60
    done = cli(*args, "--output", "o.jsonl", "--run-dir", "r", cwd=work)
    assert done.returncode == 0, done.stderr
    last = commits(work / "r")[-1].session
    redone = {(e.step, e.shard) for e in commits(work / "r") if e.session == last and e.step > 0}
    assert not (redone & finished)
    assert (work / "o.jsonl").read_text() == (work / "ref.jsonl").read_text()
