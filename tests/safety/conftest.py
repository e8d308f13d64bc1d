"""Helpers for the run-safety suite: the real CLI in real processes, on real files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from prepflow.data import journal
from tests.helpers import prepflow

TESTOPS = Path(__file__).resolve().parents[1] / "engine" / "testops.py"


def slow_pipeline(path: Path, sleep_s: float = 0.1) -> Path:
    """A CPU pipeline whose every shard takes ``sleep_s`` (so a test can act mid-run)."""
    path.write_text(
        f'name: slow\nimports: ["{TESTOPS}"]\nsteps:\n'
        "  - {op: TUpper}\n"
        f"  - {{op: TLength, params: {{sleep_s: {sleep_s}}}}}\n"
    )
    return path


cli = prepflow  # the real CLI in a subprocess


def write_rows(path: Path, n: int, text: str = "row") -> Path:
    path.write_text("".join(json.dumps({"text": f"{text} {i}"}) + "\n" for i in range(n)))
    return path


def start(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "prepflow.cli", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def commits(run_dir: Path) -> list[journal.ShardCommitted]:
    return [
        e for e in journal.read(run_dir / "journal.jsonl") if isinstance(e, journal.ShardCommitted)
    ]


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
