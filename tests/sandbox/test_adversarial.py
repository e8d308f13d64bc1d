"""The adversarial suite: every attack must be contained, judged by what happened outside."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from prepflow.core.context import ExecStatus, Limits
from tests.sandbox.conftest import processes_of, with_marker, worker_uids

REPO = Path(__file__).resolve().parents[2]


def _gone(marker: str, within_s: float = 3.0) -> bool:
    """No host process mentions ``marker`` (allowing the kernel a moment to reap)."""
    end = time.monotonic() + within_s
    while with_marker(marker):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


class TcpServer:
    """A real listener on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(addr)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


# ---- network ----------------------------------------------------------------------------------


def test_connection_to_a_host_server_never_arrives(sandbox):
    server = TcpServer()
    try:
        # the host can reach it (the server works) ...
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        time.sleep(0.2)
        assert len(server.accepted) == 1
        code = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {server.port}), timeout=2)
    print("CONNECTED")
except OSError as e:
    print("refused:", e)
"""
        result = sandbox.run_python(code)
        time.sleep(0.2)
    finally:
        server.close()
    # ... the sandbox cannot: the server saw no second connection
    assert len(server.accepted) == 1
    assert result.ok and "CONNECTED" not in result.stdout and "refused" in result.stdout


def test_outside_addresses_and_dns_are_unreachable(sandbox):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.3)
    code = f"""
import socket
for host, port in [("1.1.1.1", 53), ("8.8.8.8", 443), ("93.184.216.34", 80)]:
    try:
        socket.create_connection((host, port), timeout=2)
        print("CONNECTED", host)
    except OSError as e:
        print("no route to", host, e.errno)
for name in ["example.com", "pypi.org", "localhost.localdomain"]:
    try:
        print("RESOLVED", name, socket.getaddrinfo(name, 80))
    except OSError as e:
        print("no dns for", name)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"\\x12\\x34 dns query", ("127.0.0.1", {udp.getsockname()[1]}))
    print("SENT")
except OSError as e:
    print("udp refused", e.errno)
"""
    result = sandbox.run_python(code)
    try:
        leaked = udp.recvfrom(100)
    except TimeoutError:
        leaked = None
    finally:
        udp.close()
    assert leaked is None  # the host's UDP "DNS server" got nothing
    assert result.ok, result.stderr
    assert "CONNECTED" not in result.stdout and "RESOLVED" not in result.stdout
    assert result.stdout.count("no route to") == 3 and result.stdout.count("no dns for") == 3


# ---- processes --------------------------------------------------------------------------------


def test_fork_bomb_is_capped_and_leaves_nothing(sandbox):
    uids = worker_uids(sandbox)
    before = {p.pid for p in processes_of(uids)}
    limits = Limits(wall_s=5, cpu_s=5, processes=16)
    code = """
import os, time
made = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print("fork refused after", made, "children:", e.errno, flush=True)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    made += 1
"""
    result = sandbox.run_python(code, limits=limits)
    assert result.ok, result.stderr
    made = int(result.stdout.split("after")[1].split()[0])
    assert 0 < made < limits.processes  # RLIMIT_NPROC stopped it
    # the sleeping children died with the execution's pid namespace
    assert {p.pid for p in processes_of(uids)} <= before

    endless = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    result = sandbox.run_python(endless, limits=Limits(wall_s=0.5, cpu_s=5, processes=16))
    assert result.status is ExecStatus.TIMEOUT
    assert {p.pid for p in processes_of(uids)} <= before
    assert sandbox.run_python("print('still serving')").stdout == "still serving\n"


@pytest.mark.slow  # burns a CPU-second on every core
def test_threads_spinning_on_every_core_hit_the_cpu_limit(sandbox):
    code = """
import hashlib, os, threading
block = b"x" * (1 << 24)
def spin():  # hashing releases the GIL: every core is busy
    while True:
        hashlib.sha256(block)
for _ in range(2 * (os.cpu_count() or 1)):
    threading.Thread(target=spin, daemon=True).start()
spin()
"""
    uids = worker_uids(sandbox)
    before = {p.pid for p in processes_of(uids)}
    result = sandbox.run_python(code, limits=Limits(wall_s=20, cpu_s=1))
    assert result.status is ExecStatus.TIMEOUT
    assert {p.pid for p in processes_of(uids)} <= before


def test_infinite_loop_is_killed_at_the_wall_clock_limit(sandbox):
    marker = f"loop-{uuid.uuid4().hex}"
    code = f"# {marker}\nimport subprocess\nsubprocess.Popen(['sleep', '300.{os.getpid()}'])\nwhile True:\n    pass\n"
    result = sandbox.run_python(code, limits=Limits(wall_s=0.5, cpu_s=30))
    assert result.status is ExecStatus.TIMEOUT and result.exit_code is None
    assert _gone(f"300.{os.getpid()}")


def test_memory_hog_is_stopped_and_memory_stays_bounded(sandbox):
    code = """
chunks = []
while True:
    chunks.append(bytearray(32 << 20))
"""
    result = sandbox.run_python(code, limits=Limits(memory_mb=256))
    assert result.status is ExecStatus.MEMORY
    assert "MemoryError" in result.stderr
    assert result.peak_memory_mb is not None and result.peak_memory_mb <= 256


def test_children_that_outlive_the_program_are_killed(sandbox):
    marker = f"{time.time():.6f}"[-9:]
    code = f"""
import os, subprocess, time
subprocess.Popen(["sleep", "{marker}"])
if os.fork() == 0:
    os.execvp("sleep", ["sleep", "{marker}"])
print("parent leaves")
"""
    result = sandbox.run_python(code)
    assert result.ok and result.stdout == "parent leaves\n"
    assert _gone(marker)


def test_daemonized_processes_are_killed(sandbox):
    marker = f"{time.time():.6f}"[-8:] + "1"
    code = f"""
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 3)
        os.execvp("sleep", ["sleep", "{marker}"])
    os._exit(0)
print("daemon started")
"""
    result = sandbox.run_python(code)
    assert result.ok
    assert _gone(marker)


def test_killing_the_parent_or_everything_hurts_nobody_outside(sandbox):
    pids = set(sandbox.worker_pids())
    code = """
import os, signal
print("ppid", os.getppid(), flush=True)
for target in (os.getppid(), -1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError as e:
        print("kill", target, "refused", e.errno, flush=True)
"""
    result = sandbox.run_python(code)
    # kill(-1) took down the program itself, nothing else: its parent is outside its namespace
    assert "ppid 0" in result.stdout
    assert set(sandbox.worker_pids()) == pids
    assert all(psutil.pid_exists(p) for p in pids)
    assert sandbox.run_python("print(6 * 7)").stdout == "42\n"


def test_proc_shows_no_other_process(sandbox):
    me = os.getpid()
    code = f"""
import os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("pids", pids)
for path in ("/proc/{me}/cmdline", "/proc/{me}/environ", "/proc/1/environ"):
    try:
        print(path, len(open(path, "rb").read()))
    except OSError as e:
        print(path, "unreadable", e.errno)
"""
    os.environ["PREPFLOW_PROC_SECRET"] = "proc-secret-value"
    try:
        result = sandbox.run_python(code)
    finally:
        del os.environ["PREPFLOW_PROC_SECRET"]
    assert result.ok, result.stderr
    assert "pids [1]" in result.stdout
    assert f"/proc/{me}/cmdline unreadable" in result.stdout
    assert "proc-secret-value" not in result.stdout + result.stderr


# ---- files and secrets ------------------------------------------------------------------------


def test_writes_outside_the_scratch_dir_do_not_land(sandbox, tmp_path):
    name = f"prepflow-escape-{uuid.uuid4().hex}"
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    targets = [
        Path.home() / name,
        Path("/tmp") / name,
        REPO / name,
        run_dir / name,
        Path("/root") / name,
        Path("/usr") / name,
    ]
    code = f"""
import os
for path in {[str(t) for t in targets]!r}:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("escaped")
        print("wrote", path)
    except OSError as e:
        print("refused", path, e.errno)
open("inside.txt", "w").write("fine")
print(os.getcwd(), os.listdir("."))
"""
    result = sandbox.run_python(code)
    assert result.ok, result.stderr
    for t in targets:
        assert not t.exists(), f"{t} was written from the sandbox"
    assert "'inside.txt'" in result.stdout  # its own scratch dir works
    assert not list(run_dir.iterdir())


def test_environment_and_secret_files_are_out_of_reach(sandbox, tmp_path):
    token = f"sk-test-{uuid.uuid4().hex}"
    secret_file = tmp_path / "credentials.json"
    secret_file.write_text(f'{{"api_key": "{token}"}}')
    home_secret = Path.home() / ".prepflow-test-secret"
    os.environ["OPENAI_API_KEY"] = token
    os.environ["PREPFLOW_API_KEY"] = token
    code = f"""
import os, glob
print(sorted(os.environ.items()))
for path in [{str(secret_file)!r}, {str(home_secret)!r}, "/root/.ssh/id_rsa", "/etc/shadow",
             "/proc/1/environ", *glob.glob("/proc/*/environ")]:
    try:
        print(path, open(path, errors="replace").read())
    except OSError as e:
        print(path, "unreadable", e.errno)
"""
    try:
        result = sandbox.run_python(code, env={"GIVEN": "explicitly"})
    finally:
        del os.environ["OPENAI_API_KEY"], os.environ["PREPFLOW_API_KEY"]
    assert result.ok, result.stderr
    assert token not in result.stdout + result.stderr
    assert "('GIVEN', 'explicitly')" in result.stdout  # what the caller passes does arrive
    assert "OPENAI_API_KEY" not in result.stdout


def test_gigabytes_on_stdout_are_capped(sandbox):
    rss_before = psutil.Process().memory_info().rss
    code = "import sys\nblock = b'x' * (1 << 20)\nwhile True:\n    sys.stdout.buffer.write(block)\n"
    limits = Limits(output_bytes=1 << 20, wall_s=30)
    result = sandbox.run_python(code, limits=limits)
    assert result.status is ExecStatus.OUTPUT_LIMIT
    assert len(result.stdout) == limits.output_bytes
    assert result.stdout_bytes > limits.output_bytes
    assert psutil.Process().memory_info().rss - rss_before < 64 << 20


def test_big_files_hit_the_file_size_limit(sandbox):
    code = "open('big', 'wb').write(b'x' * (8 << 20))"
    result = sandbox.run_python(code, limits=Limits(file_size_mb=1))
    assert result.status is ExecStatus.ERROR and "File too large" in result.stderr


def test_no_new_user_namespaces_and_no_capabilities(sandbox):
    code = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("unshare", libc.unshare(0x10000000), ctypes.get_errno())
for line in open("/proc/self/status"):
    if line.startswith(("CapEff", "CapPrm", "CapBnd", "NoNewPrivs")):
        print(line.strip())
"""
    result = sandbox.run_python(code)
    assert "unshare -1" in result.stdout
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        assert f"{cap}:\t0000000000000000" in result.stdout
    assert "NoNewPrivs:\t1" in result.stdout


# ---- one execution cannot see another's state --------------------------------------------------


def test_nothing_of_one_execution_survives_into_the_next(single):
    leave = """
import os, socket, subprocess
for d in ("/tmp", "/dev/shm", "."):
    open(os.path.join(d, "left-behind"), "w").write("x")
s = socket.socket(socket.AF_UNIX)
s.bind("\\0prepflow-left-behind")
s.listen()
subprocess.Popen(["sleep", "77.5"])
import builtins
builtins.LEFT_BEHIND = True
print("left")
"""
    look = """
import builtins, os, socket
print([os.path.exists(os.path.join(d, "left-behind")) for d in ("/tmp", "/dev/shm", ".")])
try:
    socket.socket(socket.AF_UNIX).connect("\\0prepflow-left-behind")
    print("socket still there")
except OSError:
    print("no socket")
print("builtins", hasattr(builtins, "LEFT_BEHIND"))
print("pids", [p for p in os.listdir("/proc") if p.isdigit()])
"""
    assert single.run_python(leave).stdout == "left\n"
    result = single.run_python(look)
    assert result.stdout == ("[False, False, False]\nno socket\nbuiltins False\npids ['1']\n"), (
        result.stderr
    )
