"""Warm start: `prepflow run` forked by a server that has its libraries loaded, with what a
cold start gives: the same output, exit status, messages, usage lines and signal handling.

Each test has its own server folder (XDG_RUNTIME_DIR) and stops its servers at the end."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from prepflow import warm as warm_start
from tests.safety.conftest import commits, slow_pipeline, wait_for, write_rows


class Warm:
    """`python -m prepflow ...` in ``work`` with warm start on, and its servers' answers."""

    def __init__(self, work: Path, runtime: Path) -> None:
        self.work = work
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PREPFLOW_WARM": "120"}

    def argv(self, *args: str | Path, interpreter: tuple[str, ...] = ()) -> list[str]:
        return [sys.executable, *interpreter, "-m", "prepflow", *map(str, args)]

    def run(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.argv(*args), cwd=self.work, capture_output=True, text=True, timeout=120,
            env={**self.env, **env},
        )  # fmt: skip

    def start(self, *args: str | Path) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(*args), cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=self.env, start_new_session=True,
        )  # fmt: skip

    def servers(self) -> list[dict]:
        return [a for path in warm_start.servers() if (a := warm_start.ask(path, "status"))]

    def served(self) -> int:
        return sum(s["served"] for s in self.servers())

    def wait_for_server(self, count: int = 1) -> list[dict]:
        wait_for(lambda: len(self.servers()) >= count, timeout=60, what="a warm server")
        return self.servers()


@pytest.fixture
def warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warm]:
    # a short folder: a socket's path has at most 107 bytes, and pytest's are long
    runtime = Path(tempfile.mkdtemp(prefix="pfw", dir="/tmp"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # this process asks the same servers
    helper = Warm(work, runtime)
    yield helper
    pids = [s["pid"] for s in helper.servers()]
    for path in warm_start.servers():
        warm_start.ask(path, "stop")
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), timeout=30, what=f"server {pid} to stop")
    shutil.rmtree(runtime)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _summary(out: str) -> str:
    return re.sub(r"in \d+\.\ds", "in Xs", out)


def test_a_run_forked_by_a_warm_server_gives_what_a_cold_run_gives(warm: Warm):
    src = write_rows(warm.work / "in.jsonl", 200, text="a  row\u00a0with   spaces")
    (warm.work / "p.yaml").write_text("name: ws\nsteps:\n  - op: WhitespaceNormalizer\n")
    args = ("run", "p.yaml", "-i", src, "--fresh")
    cold = warm.run(*args, "-o", "cold.jsonl", PREPFLOW_WARM="0")
    assert cold.returncode == 0, cold.stderr
    assert not warm.servers() and not warm_start.servers()  # off means off

    first = warm.run(*args, "-o", "first.jsonl")  # no server yet: runs here, starts one
    assert first.returncode == 0, first.stderr
    (server,) = warm.wait_for_server()
    assert server["served"] == 0

    forked = warm.run(*args, "-o", "forked.jsonl")
    assert forked.returncode == 0, forked.stderr
    assert warm.served() == 1
    assert (warm.work / "forked.jsonl").read_bytes() == (warm.work / "cold.jsonl").read_bytes()
    assert _summary(forked.stdout).replace("forked.jsonl", "cold.jsonl") == _summary(cold.stdout)

    # a failing command: its message on the client's stderr, its exit status
    (warm.work / "bad.yaml").write_text("name: bad\nsteps:\n  - op: NoSuchOperator\n")
    bad_cold = warm.run("run", "bad.yaml", "-i", src, "-o", "b.jsonl", PREPFLOW_WARM="0")
    bad = warm.run("run", "bad.yaml", "-i", src, "-o", "b.jsonl")
    assert warm.served() == 2
    assert bad.returncode == bad_cold.returncode == 2
    assert "unknown operator 'NoSuchOperator'" in bad.stderr
    assert bad.stderr == bad_cold.stderr

    # the usage line names the command as it was typed
    help_cold = warm.run("run", "--help", PREPFLOW_WARM="0")
    help_forked = warm.run("run", "--help")
    assert warm.served() == 3
    assert help_forked.stdout == help_cold.stdout
    assert "python -m prepflow run" in help_forked.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_to_the_command_reach_the_forked_run(warm: Warm, sig: int, code: int):
    src = write_rows(warm.work / "in.jsonl", 3000)
    pipeline = slow_pipeline(warm.work / "p.yaml", sleep_s=0.1)
    args = ("run", pipeline, "--input", src, "--shard-rows", "100", "--workers", "1")
    assert warm.run(*args, "-o", "first.jsonl", "--run-dir", "first").returncode == 0
    warm.wait_for_server()
    run = warm.start(*args, "--output", "o.jsonl", "--run-dir", "r")
    wait_for(lambda: len([e for e in commits(warm.work / "r") if e.step > 0]) >= 4, what="commits")
    assert warm.servers()[0]["running"] == 1
    os.kill(run.pid, sig)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == code, stderr
    assert f"interrupted by {signal.Signals(sig).name}" in stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    assert warm.served() == 1


def _slow_run_forked(warm: Warm) -> tuple[subprocess.Popen, dict]:
    """A run forked by a warm server (started by a first, short run), two shards committed."""
    src = write_rows(warm.work / "in.jsonl", 3000)
    pipeline = slow_pipeline(warm.work / "p.yaml", sleep_s=0.2)
    args = ("run", pipeline, "--input", src, "--shard-rows", "100", "--workers", "1")
    first = warm.run(*args, "-o", "first.jsonl", "--run-dir", "first", "--limit", "100")
    assert first.returncode == 0, first.stderr
    (server,) = warm.wait_for_server()
    run = warm.start(*args, "--output", "o.jsonl", "--run-dir", "r")
    wait_for(lambda: len([e for e in commits(warm.work / "r") if e.step > 0]) >= 2, what="commits")
    return run, server


@pytest.mark.slow
def test_a_client_killed_hangs_up_its_run(warm: Warm):
    run, _ = _slow_run_forked(warm)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    wait_for(lambda: warm.servers()[0]["running"] == 0, timeout=30, what="the run to hang up")
    assert warm.served() == 1 and not (warm.work / "o.jsonl").exists()


@pytest.mark.slow
def test_a_run_whose_server_dies_is_hung_up_and_its_command_fails(warm: Warm):
    run, server = _slow_run_forked(warm)
    (forked,) = psutil.Process(server["pid"]).children()
    os.kill(server["pid"], signal.SIGKILL)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1
    assert "the warm server ended before the command did" in stderr
    wait_for(lambda: not _alive(forked.pid), timeout=30, what="the forked run to be hung up")


@pytest.mark.slow
def test_what_a_server_was_built_from_decides_whether_it_serves(warm: Warm, tmp_path: Path):
    src = write_rows(warm.work / "in.jsonl", 20)
    (warm.work / "p.yaml").write_text("name: ws\nsteps:\n  - op: WhitespaceNormalizer\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    warm.env["PYTHONPATH"] = str(lib)
    args = ("run", "p.yaml", "-i", src, "-o", "o.jsonl", "--fresh")
    assert warm.run(*args).returncode == 0
    (first,) = warm.wait_for_server()

    # another environment: its own server; the first one serves nothing of it
    assert warm.run(*args, PREPFLOW_OTHER="1").returncode == 0
    assert len(warm.wait_for_server(2)) == 2 and warm.served() == 0
    assert warm.run(*args, PREPFLOW_OTHER="1").returncode == 0
    assert {s["pid"]: s["served"] for s in warm.servers()}[first["pid"]] == 0

    # interpreter options the server was not started with: the command runs in its own process
    before = warm.served()
    options = subprocess.run(
        warm.argv(*args, interpreter=("-X", "dev")), cwd=warm.work, env=warm.env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert options.returncode == 0, options.stderr
    assert warm.served() == before

    # a module that no import names, added where it imports from: nothing it loaded changes
    (lib / "unrelated.py").write_text("")
    assert warm.run(*args).returncode == 0
    assert {s["pid"]: s["served"] for s in warm.servers()}[first["pid"]] == 1

    # a package installed there (its metadata): it stops; the command runs cold
    (lib / "plugin-1.0.dist-info").mkdir()
    assert warm.run(*args).returncode == 0
    wait_for(lambda: not _alive(first["pid"]), timeout=30, what="the out-of-date server to stop")
    wait_for(lambda: first["pid"] not in [s["pid"] for s in warm.servers()] and len(warm.servers()) == 2,
             timeout=60, what="its replacement")  # fmt: skip


@pytest.mark.slow
def test_warm_status_and_stop(warm: Warm):
    assert "no warm server running" in warm.run("warm", "status").stdout
    src = write_rows(warm.work / "in.jsonl", 10)
    (warm.work / "p.yaml").write_text("name: ws\nsteps:\n  - op: WhitespaceNormalizer\n")
    assert warm.run("run", "p.yaml", "-i", src, "-o", "o.jsonl").returncode == 0
    (server,) = warm.wait_for_server()
    listed = warm.run("warm", "status")
    assert f"pid {server['pid']}: " in listed.stdout and "served 0" in listed.stdout
    stopped = warm.run("warm", "stop")
    assert stopped.stdout.strip() == "stopped 1 warm server"
    wait_for(lambda: not _alive(server["pid"]), timeout=30, what="the server to stop")
    assert not warm_start.servers()
