"""Run a server command as a supervised subprocess: logs to a file, readiness, clean stop.

Shared by every backend; only the command line differs. The server gets its own session (so its
process group can be signalled as a whole, and a Ctrl-C on the terminal reaches only prepflow,
which then stops it), and is stopped with SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from prepflow.core.errors import PrepflowError
from prepflow.core.processes import die_with_parent

POLL_S = 0.25
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 30


class LaunchError(PrepflowError):
    """A local model server could not be started (missing package or GPU, crash, timeout)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def supervised(
    argv: Sequence[str],
    *,
    log_path: Path,
    ready_url: str,
    ready_timeout: float,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv``, wait until ``ready_url`` answers 200, yield the process, stop it on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== prepflow {time.strftime('%F %T')}: {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=None if env is None else {**os.environ, **env},
            preexec_fn=die_with_parent,  # a SIGKILL of prepflow takes the server down too
        )  # fmt: skip
        try:
            wait_ready(proc, ready_url, timeout=ready_timeout, log_path=log_path)
            yield proc
        finally:
            stop(proc)


def wait_ready(proc: subprocess.Popen[bytes], url: str, *, timeout: float, log_path: Path) -> None:
    """Poll ``url`` until it answers 200; fail with the log tail if the server dies or is late."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            if (code := proc.poll()) is not None:
                raise LaunchError(
                    f"server exited with code {code} before it was ready; "
                    f"last lines of {log_path}:\n{log_tail(log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"server not ready at {url} after {timeout:.0f} s; "
                    f"last lines of {log_path}:\n{log_tail(log_path)}"
                )
            time.sleep(POLL_S)


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds, reap the leader."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    _signal_group(proc.pid, signal.SIGKILL)  # also reaches workers the leader left behind
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 16_384))
        text = f.read().decode("utf-8", "replace")
    return "\n".join("  " + line for line in text.splitlines()[-lines:])
