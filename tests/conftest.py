"""Shared fixtures. Real corpora come from ../shared/data beside the repository checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The CLI in the tests' subprocesses runs cold: a warm server would outlive its test
# (tests/test_warm.py turns warm start on, with a server folder of each test's own).
os.environ["PREPFLOW_WARM"] = "0"


def shared_data_dir() -> Path:
    return Path(os.environ.get("PREPFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set PREPFLOW_SHARED_DATA)")
    return path
