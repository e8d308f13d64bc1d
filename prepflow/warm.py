"""Warm start, the command's side: hand ``prepflow run`` to a warm server when one matches this
process exactly, start one for the next command when none does. A warm server has imported
prepflow's libraries once and forks each command from that state, so that the command skips the
0.25-0.35 s of imports (the server: :mod:`prepflow.cli._warm_server`; when each is used:
docs/concepts/warm-start.md).

Standard library only, and as little of it as possible: this runs first on every ``prepflow
run``. It uses the C modules under :mod:`socket` and :mod:`signal`: those two build enums of
their constants at import, 8 ms of the ~25 ms a handed-over command spends in its own process.

A server is keyed by everything that could make its preloaded state differ from a fresh
process's: the interpreter, ``sys.path``, the environment, user and groups, CPU affinity,
resource limits, cgroup and namespaces, priority. The key names its socket, in a directory only
this user can open; the server compares the whole key again before it takes a command.
"""

from __future__ import annotations

import _signal
import _socket
import hashlib
import marshal
import os
import resource
import stat
import sys

#: PREPFLOW_WARM: off with one of these; else the seconds an idle server waits (default 600)
ENV = "PREPFLOW_WARM"
OFF = frozenset({"0", "off", "no", "false"})
IDLE_S = 600
#: the commands handed over: `run` reads its input from files, never from a terminal
COMMANDS = frozenset({"run"})
#: environment variables that differ between two shells without changing what Python imports
#: (the command still gets them, as all the others)
VOLATILE = frozenset({"PWD", "OLDPWD", "_", "SHLVL"})
_RLIMITS = tuple(getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_"))
_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")
#: a server's first reply: it took the command, or why not
TAKEN, STALE, REFUSED = b"Y", b"S", b"N"
#: the last message: the command's exit status, or the signal that ended it
EXITED, KILLED = b"E", b"K"
_FD_SIZE = 4  # a C int, as SCM_RIGHTS carries file descriptors

# The server's bootstrap: sys.path as the command's, before anything is imported from it.
_BOOT = "import sys; sys.path[:] = sys.argv[3:]; from prepflow.cli._warm_server import main; main()"


def enabled() -> bool:
    return sys.platform == "linux" and os.environ.get(ENV, "").strip().lower() not in OFF


def idle_seconds() -> float:
    value = os.environ.get(ENV, "").strip()
    try:
        return float(value) if value else IDLE_S
    except ValueError:
        return IDLE_S


def hand_over(argv: list[str]) -> int | None:
    """Run ``argv`` on a warm server and return its exit status; ``None`` when no server took
    it (the caller runs it itself). Without a server, one is started for the next command."""
    if not (enabled() and argv[1:2] and argv[1] in COMMANDS and _plain_interpreter()):
        return None
    key = key_material()
    path = socket_path(key)
    if path is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        send(sock, _request(key, argv), fds=[0, 1, 2])
        reply = sock.recv(1)
    except OSError:
        reply = b""
    if reply != TAKEN:
        sock.close()
        if reply != REFUSED:  # none there, starting, or out of date: start one
            start_server(path)
        return None
    return _wait(sock)


def key_material() -> tuple:
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k not in VOLATILE))
    return (
        sys.executable,
        sys.version,
        tuple(sys.path),
        env,
        (os.getuid(), os.getgid(), tuple(sorted(os.getgroups()))),
        tuple(sorted(os.sched_getaffinity(0))),
        tuple(resource.getrlimit(r) for r in _RLIMITS),
        os.getpriority(os.PRIO_PROCESS, 0),
        _read("/proc/self/cgroup"),
        tuple(_link(f"/proc/self/ns/{name}") for name in _NAMESPACES),
    )


def socket_path(key: tuple) -> str | None:
    """The socket of the server for ``key``, in a directory of this user's alone; ``None``
    where there is none to be had (or the path is too long for a socket)."""
    folder = server_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    path = os.path.join(folder, f"{digest}.sock")
    return path if len(path.encode()) < 104 else None


def server_dir() -> str | None:
    base = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    folder = os.path.join(base, f"prepflow-warm-{os.getuid()}")
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    st = os.lstat(folder)
    private = stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o077
    return folder if private and st.st_uid == os.getuid() else None


def start_server(path: str) -> None:
    """Start a server for this process's key, detached: its own session, no terminal, nothing
    of this process's output. It loads once this command has ended."""
    null = os.devnull
    try:
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-c", _BOOT, path, str(os.getpid()), *sys.path],
            os.environ,
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, null, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, null, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
        )
    except OSError:
        return  # no warm start: nothing else is lost


def send(sock: _socket.socket, obj: object, fds: list[int] | None = None) -> None:
    """One message: 4-byte length, then ``obj`` marshalled; ``fds`` travel with the length."""
    data = marshal.dumps(obj)
    head = len(data).to_bytes(4, "big")
    rights = b"".join(fd.to_bytes(_FD_SIZE, sys.byteorder) for fd in fds or ())
    sent = sock.sendmsg([head], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)] if fds else [])
    sock.sendall(head[sent:] + data)


def receive(sock: _socket.socket, max_fds: int = 0) -> tuple[object, list[int]]:
    """One :func:`send` message, and the file descriptors that came with it (up to ``max_fds``)."""
    head, ancillary, _, _ = sock.recvmsg(4, _socket.CMSG_SPACE(max_fds * _FD_SIZE))
    fds = [
        int.from_bytes(data[i : i + _FD_SIZE], sys.byteorder)
        for level, kind, data in ancillary
        if (level, kind) == (_socket.SOL_SOCKET, _socket.SCM_RIGHTS)
        for i in range(0, len(data) - _FD_SIZE + 1, _FD_SIZE)
    ]
    size = int.from_bytes(recv_exact(sock, 4, head), "big")
    return marshal.loads(recv_exact(sock, size)), fds


def recv_exact(sock: _socket.socket, n: int, got: bytes = b"") -> bytes:
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        got += chunk
    return got


def _request(key: tuple, argv: list[str]) -> dict:
    umask = os.umask(0)
    os.umask(umask)
    return {
        "op": "run",
        "key": key,
        "argv": argv,
        "prog": _program_name(argv[0]),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": umask,
    }


def _wait(sock: _socket.socket) -> int:
    """Forward the signals a terminal or a supervisor sends this process; return the command's
    exit status (a command ended by a signal ends this process by the same signal)."""

    def forward(signum: int, _frame: object) -> None:
        try:
            sock.send(bytes([signum]))
        except OSError:
            return  # the server is gone; the wait below says so

    for signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(signum, forward)
    try:
        last = recv_exact(sock, 5)
    except OSError:
        print(
            "prepflow: the warm server ended before the command did, and stopped it; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 1
    code = int.from_bytes(last[1:], "big", signed=True)
    if last[:1] == KILLED:
        _signal.signal(code, _signal.SIG_DFL)
        os.kill(os.getpid(), code)
        return 128 + code
    return code


def _plain_interpreter() -> bool:
    # options such as -X importtime, -O or -W change the interpreter the server would need
    options = sys.orig_argv[1 : len(sys.orig_argv) - len(sys.argv)]
    return options in ([], ["-m"])


def _program_name(argv0: str) -> str:
    # what click shows in usage lines, which it reads from the __main__ module (the server's)
    package = getattr(sys.modules["__main__"], "__package__", None)
    if not package:
        return os.path.basename(argv0)
    name = os.path.splitext(os.path.basename(argv0))[0]
    return f"python -m {package if name == '__main__' else f'{package}.{name}'}"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def servers() -> list[str]:
    """The sockets of this user's warm servers."""
    folder = server_dir()
    if folder is None:
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".sock"))


def ask(path: str, op: str) -> dict | None:
    """A server's answer to ``op`` ("status", or "stop": it ends once its commands have);
    ``None`` when none answers there."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(path)
        send(sock, {"op": op})
        answer, _ = receive(sock)
    except (OSError, ValueError, EOFError):
        return None
    finally:
        sock.close()
    return answer if isinstance(answer, dict) else None
