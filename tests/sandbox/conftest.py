"""A sandbox shared by the module's tests, and what the host can see of its processes."""

from __future__ import annotations

import os
import shutil

import psutil
import pytest

from prepflow.sandbox import ProcessSandbox, open_sandbox
from prepflow.sandbox.check import outside_uids


def namespaces_expected() -> bool:
    """Namespaces are required where bubblewrap is installed (CI installs it: setup.sh)."""
    return shutil.which("bwrap") is not None


@pytest.fixture(scope="module")
def sandbox():
    if not namespaces_expected():
        pytest.skip("bubblewrap is not installed (scripts/setup.sh installs it)")
    with open_sandbox(strict=True, workers=2) as sb:
        yield sb


@pytest.fixture
def single():
    """One worker: consecutive executions run in the same fork server."""
    if not namespaces_expected():
        pytest.skip("bubblewrap is not installed (scripts/setup.sh installs it)")
    with open_sandbox(strict=True, workers=1) as sb:
        yield sb


def processes_of(uids: set[int]) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["uids"]):
        if p.info["uids"] and p.info["uids"].real in uids:
            out.append(p)
    return out


def with_marker(marker: str) -> list[psutil.Process]:
    """Host processes whose command line mentions ``marker``."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in p.info["cmdline"] or ()):
            out.append(p)
    return out


def worker_uids(sb: ProcessSandbox) -> set[int]:
    uids = outside_uids(sb)
    assert uids, "no worker process found"
    return uids


def is_root() -> bool:
    return os.geteuid() == 0
