"""The host side of one sandbox worker: starts its fork server and exchanges framed requests."""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import signal
import struct
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import orjson

from prepflow.core.errors import PrepflowError
from prepflow.sandbox.isolation import LaunchPlan

#: Seconds a worker may take to start and answer its first frame.
START_TIMEOUT_S = 30.0
#: Seconds beyond the wall-clock limit the host waits for a report before killing the worker.
REPORT_GRACE_S = 10.0


class SandboxError(PrepflowError):
    """The sandbox itself failed (could not start, or a worker broke): not the program's fault."""


class SandboxUnavailable(SandboxError):
    """Strict mode: a protection is missing on this machine."""


class Worker:
    """One fork server: pre-started, serving one execution at a time."""

    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.started = time.monotonic()
        self._ready: dict[str, Any] | None = None
        fds = []
        argv = list(plan.argv)
        for name, content in plan.data_files.items():
            fd = os.memfd_create(name, 0)
            os.write(fd, content.encode())
            os.lseek(fd, 0, os.SEEK_SET)
            fds.append(fd)
            argv = [str(fd) if a == "{" + name + "}" else a for a in argv]
        argv.append(orjson.dumps(plan.config).decode())
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                pass_fds=fds,
                start_new_session=True,
                cwd="/",
            )
        except OSError as e:
            raise SandboxError(f"cannot start a sandbox worker ({argv[0]}): {e}") from None
        finally:
            for fd in fds:
                os.close(fd)
        self.fd_out = self.proc.stdout.fileno()  # type: ignore[union-attr]

    # ---- protocol ---------------------------------------------------------------------------

    def ready(self) -> dict[str, Any]:
        """The worker's hello (waits for it the first time); raises when it failed to start."""
        if self._ready is None:
            hello = self._recv(START_TIMEOUT_S - (time.monotonic() - self.started))
            if not hello.get("ready"):
                self.kill()
                raise SandboxError(f"sandbox worker failed to start: {hello.get('error')}")
            self._ready = hello
        return self._ready

    def request(self, req: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        self.ready()
        body = orjson.dumps(req)
        try:
            self.proc.stdin.write(struct.pack(">I", len(body)) + body)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except OSError as e:
            self.kill()
            raise SandboxError(f"sandbox worker is gone: {e}{self._stderr()}") from None
        return self._recv(timeout_s)

    def _recv(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + max(timeout_s, 0.1)
        head = self._read(4, deadline)
        return orjson.loads(self._read(struct.unpack(">I", head)[0], deadline))

    def _read(self, n: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd_out, selectors.EVENT_READ)
            while n:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    raise SandboxError("sandbox worker did not answer in time; it was killed")
                chunk = os.read(self.fd_out, min(n, 1 << 20))
                if not chunk:
                    self.kill()
                    raise SandboxError(f"sandbox worker exited{self._stderr()}")
                chunks.append(chunk)
                n -= len(chunk)
        return b"".join(chunks)

    # ---- lifetime ---------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything under it (bubblewrap's pid namespace dies with it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]

    def close(self) -> None:
        """Ask the worker to stop (end of input), then make sure it did."""
        with contextlib.suppress(Exception):
            self.proc.stdin.close()  # type: ignore[union-attr]
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        self.kill()
        if self.proc.stderr:
            self.proc.stderr.close()

    def _stderr(self) -> str:
        """What the worker said on stderr before dying (for error messages)."""
        if self.alive or self.proc.stderr is None:
            return ""
        with contextlib.suppress(Exception):
            text = self.proc.stderr.read(4096).decode(errors="replace").strip()
            if text:
                return f": {text}"
        return ""


def decode(blob: str) -> bytes:
    return base64.b64decode(blob)
