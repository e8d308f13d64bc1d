"""The warm server: imports prepflow's libraries once, then forks a process per command.

Started detached by :func:`prepflow.warm.start_server`, one per key (the interpreter,
environment, limits... of the commands it serves). It forks only from a clean state: one
thread, nothing run. The forked process becomes the command: the client's standard input and
outputs (passed over the socket), working directory, umask, environment and arguments, its own
process group; then it runs the CLI as a fresh process would and ends the same way
(:mod:`prepflow.cli._exit`). The server reports its exit status, forwards the client's signals,
and hangs the command up (SIGHUP) when the client goes away.

It refuses a command, and stops, as soon as a file it imported (or a folder it imported from)
changed: the next command starts a new one. It stops after ``PREPFLOW_WARM`` seconds idle
(default 600), or on ``prepflow warm stop``. After each command it imports the modules of
prepflow, the standard library and installed packages that the command imported and it had not
(an operator's library, loaded in its ``setup``), so the next command finds them loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import gc
import importlib
import os
import select
import selectors
import signal
import socket
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field

from prepflow import warm
from prepflow.cli import _exit, app
from prepflow.cli._memory import tune_allocators

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1  # prctl's option (linux/prctl.h)

#: where the modules it learns come from: prepflow, the standard library, installed packages
#: (not a user's own modules: those are read afresh by every command)
_LEARNABLE = tuple(
    os.path.join(os.path.abspath(root), "")
    for root in {
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
    }
)


@dataclass
class Command:
    """What a forked process needs to become the client's command."""

    request: dict
    conn: socket.socket
    fds: list[int]
    learned: int  # where it writes the library modules it imported


@dataclass
class _Running:
    pid: int
    conn: socket.socket
    pidfd: int
    learned: int  # read end


@dataclass
class _Server:
    listener: socket.socket
    path: str
    lock: int  # held while this server lives (a file lock, shared by no command)
    key: tuple
    idle_s: float
    origin: _Origin
    running: dict[int, _Running] = field(default_factory=dict)  # by pidfd
    started: float = field(default_factory=time.time)
    served: int = 0
    closing: bool = False
    inode: int = 0  # of the socket's file, to remove it only while it is this server's
    pid: int = field(default_factory=os.getpid)

    def serve(self) -> Command:
        """Serve until idle or stopped (then the process ends); returns only in a forked
        process, with the command it is to become."""
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        last = time.monotonic()
        while True:
            idle = time.monotonic() - last > self.idle_s
            if not self.running and (self.closing or idle):
                self._stop()
            events = selector.select(None if self.running else self.idle_s)
            for key, _ in events:
                last = time.monotonic()
                if key.fileobj is self.listener:
                    command = self._accept(selector)
                    if command is not None:
                        return command
                elif isinstance(key.data, _Running) and key.fileobj is key.data.conn:
                    self._forward(selector, key.data)
                else:
                    self._reap(selector, key.data)
                    self._learn(key.data)

    def _accept(self, selector: selectors.BaseSelector) -> Command | None:
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        try:
            request, fds = warm.receive(conn, max_fds=3) if _same_user(conn) else (None, [])
            op = request.get("op") if isinstance(request, dict) else None
            if op == "run":
                return self._fork(selector, conn, request, fds)
            _close_all(fds)
            if op in ("status", "stop"):
                warm.send(conn, self.status())
            if op == "stop":
                self._close()
        except (OSError, ValueError, EOFError):  # the client went away, or sent nonsense
            pass
        conn.close()
        return None

    def _fork(
        self, selector: selectors.BaseSelector, conn: socket.socket, request: dict, fds: list[int]
    ) -> Command | None:
        reply = warm.TAKEN
        if len(fds) != 3 or request.get("key") != self.key:
            reply = warm.REFUSED
        elif self.closing or not self.origin.unchanged():
            reply = warm.STALE
            self._close()
        if reply != warm.TAKEN:
            _close_all(fds)
            conn.sendall(reply)
            conn.close()
            return None
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            return Command(request, conn, fds, write)
        os.close(write)
        os.set_blocking(read, False)  # what the command left; a process it forked may hold it
        _close_all(fds)
        with contextlib.suppress(OSError):  # as the command does: a signal forwarded at once
            os.setpgid(pid, pid)  # finds its group
        conn.settimeout(None)
        with contextlib.suppress(OSError):  # gone already: the hang-up below stops the command
            conn.sendall(warm.TAKEN)
        running = _Running(pid, conn, os.pidfd_open(pid), read)
        self.running[running.pidfd] = running
        selector.register(running.pidfd, selectors.EVENT_READ, running)
        selector.register(conn, selectors.EVENT_READ, running)
        self.served += 1
        return None

    def _forward(self, selector: selectors.BaseSelector, running: _Running) -> None:
        """The client's signals, to the command's process group; SIGHUP when it went away."""
        try:
            data = running.conn.recv(64)
        except OSError:
            data = b""
        if not data:
            selector.unregister(running.conn)
            data = bytes([signal.SIGHUP])
        for signum in data:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(running.pid, signum)

    def _reap(self, selector: selectors.BaseSelector, running: _Running) -> None:
        _, status = os.waitpid(running.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        kind, value = (warm.KILLED, -code) if code < 0 else (warm.EXITED, code)
        with contextlib.suppress(OSError):
            running.conn.sendall(kind + value.to_bytes(4, "big", signed=True))
        for fileobj in (running.pidfd, running.conn):
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(fileobj)
        running.conn.close()
        os.close(running.pidfd)
        del self.running[running.pidfd]

    def _learn(self, running: _Running) -> None:
        """Import the library modules the command imported and this server had not. One that
        starts a thread as it is imported leaves nothing safe to fork: the server stops."""
        try:
            names = os.read(running.learned, 65536).decode(errors="replace").split()
        except BlockingIOError:
            names = []
        os.close(running.learned)
        if self.closing or not names:
            return
        for name in names:
            with contextlib.suppress(Exception):  # the next command imports it itself
                importlib.import_module(name)
        gc.freeze()
        if threading.active_count() > 1:  # a fork from here would not be clean
            self._close()
        self.origin = _Origin.now()

    def status(self) -> dict:
        return {
            "pid": self.pid,
            "socket": self.path,
            "started": self.started,
            "served": self.served,
            "running": len(self.running),
            "idle_s": self.idle_s,
            "modules": len(sys.modules),
        }

    def _close(self) -> None:
        """Take no more commands; end once the running ones have."""
        if not self.closing:
            self.closing = True
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self.inode:  # not a newer server's
                    os.unlink(self.path)

    def _stop(self) -> None:
        self._close()
        os._exit(0)


def main() -> None:
    """The server process (``python -c`` from :data:`prepflow.warm._BOOT`). It takes
    the lock before it loads the engine, so that a server started when one is already there
    ends soon, then waits for the command that started it to end, not to take a core from it."""
    path, parent = sys.argv[1], int(sys.argv[2])
    key = warm.key_material()
    if warm.socket_path(key) != path:
        return  # not what the client saw: its commands would not match
    lock = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server for this key, starting or serving
    _wait_for_exit(parent)
    _exit.end_after_exit_handlers()  # before any import registers a handler of its own
    gc.disable()
    _load()
    gc.freeze()
    if threading.active_count() > 1:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a server that died left it; the lock says none is serving
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    os.chdir("/")  # hold no folder of the user's
    server = _Server(listener, path, lock, key, warm.idle_seconds(), _Origin.now())
    server.inode = os.stat(path).st_ino
    command = server.serve()
    _become(command, server)


def _become(command: Command, server: _Server) -> None:
    """In the forked process: turn into the client's command, run it, end as it ends. It is
    hung up (SIGHUP) if the server ends first: nothing would report its status any more."""
    os.setpgid(0, 0)
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGHUP)
    if os.getppid() != server.pid:
        os.kill(os.getpid(), signal.SIGHUP)
    server.listener.close()
    command.conn.close()
    os.close(server.lock)
    for running in server.running.values():
        running.conn.close()
        os.close(running.pidfd)
        os.close(running.learned)
    request = command.request
    for target, fd in enumerate(command.fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for stream in (sys.stdin, sys.stdout):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.reconfigure(line_buffering=stream.isatty())  # as a fresh start sets it
    atexit.register(_LearnedReport(set(sys.modules), command.learned))  # runs before the end
    tune_allocators()  # for the worker processes it spawns: the environment is new
    _exit.run_command(lambda: app(args=sys.argv[1:], prog_name=request["prog"]))


def _load() -> None:
    """What `prepflow run` loads before it reads a pipeline: the engine, Arrow's compute
    functions, the operator index (the operators' own modules are learned). Imported here, as
    the command imports them in `run`: after the allocators are set, and after the exit handler
    that ends each forked command (:func:`prepflow.cli._exit.end_after_exit_handlers`)."""
    tune_allocators()  # before pyarrow is imported, as the command does
    import pyarrow.compute  # noqa: F401

    import prepflow.engine.compiler
    import prepflow.engine.runner
    import prepflow.engine.spec  # noqa: F401
    from prepflow.core.registry import registry

    registry.index()


def _wait_for_exit(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # ended already
    select.select([pidfd], [], [])
    os.close(pidfd)


@dataclass
class _LearnedReport:
    before: set[str]
    fd: int

    def __call__(self) -> None:
        names = [
            name for name in set(sys.modules) - self.before if _learnable(sys.modules.get(name))
        ]
        with contextlib.suppress(OSError):
            os.write(self.fd, " ".join(sorted(names)).encode()[:60_000])
        os.close(self.fd)


def _learnable(module: object) -> bool:
    path = getattr(module, "__file__", None)
    return bool(path) and os.path.abspath(path).startswith(_LEARNABLE)


@dataclass(frozen=True)
class _Origin:
    """What the server's state was built from: the file of every module it imported, and in
    each folder of ``sys.path`` the names that would change an import there: a module of the
    same top-level name (it would shadow the one imported), a package's metadata or a ``.pth``
    file (an install, and with it the operator index). Any change and it stops serving."""

    files: dict[str, tuple[int, int]]
    folders: dict[str, frozenset[str]]
    top_level: frozenset[str]

    @classmethod
    def now(cls) -> _Origin:
        modules = list(sys.modules.items())
        top_level = frozenset(name.partition(".")[0] for name, _ in modules)
        files = {m.__file__ for _, m in modules if getattr(m, "__file__", None)}
        return cls(
            {path: _signature(path) for path in files},
            {folder: _listing(folder, top_level) for folder in filter(None, sys.path)},
            top_level,
        )

    def unchanged(self) -> bool:
        return all(_signature(path) == sig for path, sig in self.files.items()) and all(
            _listing(folder, self.top_level) == names for folder, names in self.folders.items()
        )


def _listing(folder: str, top_level: frozenset[str]) -> frozenset[str]:
    try:
        names = os.listdir(folder)
    except OSError:
        return frozenset()
    return frozenset(
        name
        for name in names
        if name.endswith((".dist-info", ".egg-info", ".pth")) or name.split(".")[0] in top_level
    )


def _signature(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], sys.byteorder) == os.getuid()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
