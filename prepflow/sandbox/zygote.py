"""The fork server that runs inside a sandbox worker (a script: standard library only).

Started once per worker (by bubblewrap, or directly in the rlimit-only fallback), it reads
requests from the host on fd 0 and answers on fd 1, one frame each: a 4-byte big-endian length
and a JSON object. For every request it forks a supervisor, which (with namespaces) unshares a
new mount, pid, network, IPC and UTS namespace and forks the program's process: pid 1 of that
pid namespace, with its own /proc, /tmp, /dev/shm and scratch tmpfs, rlimits, no capabilities
and no_new_privs. The supervisor enforces the wall-clock limit and the output caps, reaps it,
and reports. When the program's process ends, the kernel kills everything left in its pid
namespace, and its tmpfs mounts go with its mount namespace: nothing of one execution survives
into the next. This process never runs untrusted code itself; it only forks from a clean state.

Python programs are not started with a new interpreter: the forked child compiles and runs
them as ``__main__`` (which is why the fork server exists: a fork costs ~1 ms, an interpreter
start ~20 ms). Commands are ``execve``'d.
"""

import base64
import contextlib
import ctypes
import json
import os
import resource
import selectors
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
import types

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SCRATCH = "/scratch"
#: the programs' uid and gid inside their user namespace
SANDBOX_UID = 1000
#: exit status of a program process whose setup failed (reported on the setup pipe, not as this)
SETUP_FAILED = 125

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


# ---- framing ---------------------------------------------------------------------------------


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(fd):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)


def send(fd, obj):
    body = json.dumps(obj).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


# ---- the worker's own namespace --------------------------------------------------------------


def enter_user_namespace():
    """Own a user namespace (uid 1000 inside, this process's uid outside) so that the
    supervisors may unshare the other namespaces, and forbid any further user namespace."""
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{SANDBOX_UID} {uid} 1\n")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{SANDBOX_UID} {gid} 1\n")
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")


# ---- the program's process -------------------------------------------------------------------


def _mount(source, target, fstype, flags, data=None):
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype and fstype.encode(),
            flags,
            data and data.encode(),
        ),
        f"mount {target}",
    )


def _isolate_mounts(tmp_mb):
    """Private propagation, this pid namespace's /proc over the worker's, fresh tmpfs mounts."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    opts = f"size={tmp_mb}m,nr_inodes=16384"
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts + ",mode=1777")
    _mount("tmpfs", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, opts + ",mode=0755")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts + ",mode=1777")


def _drop_capabilities():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding capability")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (x2): all empty
    _check(_libc.capset(header, data), "capset")


def _set_limits(limits, extra_processes):
    cpu = max(1, int(-(-limits["cpu_s"] // 1)))
    mem = limits["memory_mb"] << 20
    for what, soft, hard in (
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, mem, mem),
        (resource.RLIMIT_NPROC, limits["processes"] + extra_processes, None),
        (resource.RLIMIT_FSIZE, limits["file_size_mb"] << 20, None),
        (resource.RLIMIT_NOFILE, limits["open_files"], None),
        (resource.RLIMIT_CORE, 0, None),
        (resource.RLIMIT_MEMLOCK, 0, None),
    ):
        resource.setrlimit(what, (soft, soft if hard is None else hard))


def _write_files(workdir, files):
    for name, blob in files.items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(blob))


def program_process(config, req, workdir, fds):
    """Becomes the program: isolate, write files, redirect, limit, drop privileges, run.
    Any failure before the program starts goes to the setup pipe; the program never runs."""
    stdin_fd, out_w, err_w, setup_w = fds
    try:
        os.setsid()
        limits = req["limits"]
        if config["namespaces"]:
            _isolate_mounts(config["tmp_mb"])
        else:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if config.get("uid") is not None:
                os.setgroups([])
                os.setgid(config["uid"])
                os.setuid(config["uid"])
        files = dict(req.get("files") or {})
        if req["kind"] == "python":
            files["main.py"] = base64.b64encode(req["code"].encode()).decode()
        _write_files(workdir, files)
        os.chdir(workdir)
        os.umask(0o022)
        for src, dst in ((stdin_fd, 0), (out_w, 1), (err_w, 2)):
            os.dup2(src, dst)
        os.closerange(3, setup_w)
        os.closerange(setup_w + 1, 65536)
        os.environ.clear()
        os.environ.update(req["env"])
        if not config["namespaces"]:
            os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        _set_limits(limits, config["extra_processes"])
        if config["namespaces"]:
            _drop_capabilities()
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    except BaseException as e:
        os.write(setup_w, f"{type(e).__name__}: {e}".encode())
        os._exit(SETUP_FAILED)
    os.write(setup_w, b"\0")
    os.close(setup_w)
    if req["kind"] == "python":
        os._exit(_run_python(workdir))
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(req["argv"][0], req["argv"], dict(os.environ))
    except OSError as e:
        os.write(2, f"cannot run {req['argv'][0]!r}: {e.strerror}\n".encode())
    os._exit(127)


def _run_python(workdir):
    """Run main.py as ``__main__`` in this (forked) interpreter; return its exit status as
    ``python main.py`` would."""
    path = os.path.join(workdir, "main.py")
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv = ["main.py"]
    sys.path[0:0] = [workdir]
    status = 0
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec")
        exec(code, module.__dict__)
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException as e:
        tb = e.__traceback__.tb_next if e.__traceback__ else None  # not this function's frame
        traceback.print_exception(type(e), e, tb)
        status = 1
    for t in threading.enumerate():  # as the interpreter does at exit
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 1
    return status


def _exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


# ---- the supervisor --------------------------------------------------------------------------


def supervise(config, req):
    """Fork the program's process, watch its time and output, reap it, return the report."""
    limits = req["limits"]
    if config["namespaces"]:
        _check(
            _libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
            "unshare",
        )
        workdir = SCRATCH
    else:
        workdir = tempfile.mkdtemp(prefix="run-", dir=config["scratch_root"])
        if config.get("uid") is not None:
            os.chown(workdir, config["uid"], config["uid"])
    stdin_fd = os.memfd_create("stdin")
    os.write(stdin_fd, base64.b64decode(req.get("stdin") or ""))
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    setup_r, setup_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (out_r, err_r, setup_r):
            os.close(fd)
        program_process(config, req, workdir, (stdin_fd, out_w, err_w, setup_w))
    for fd in (stdin_fd, out_w, err_w, setup_w):
        os.close(fd)
    setup = _read_all(setup_r)
    if setup != b"\0":
        os.waitpid(pid, 0)
        _cleanup(config, pid, workdir)
        return {"setup_error": setup.decode(errors="replace") or "the program process died"}
    start = time.monotonic()
    report = _watch(pid, out_r, err_r, limits, start)
    _, status, usage = os.wait4(pid, 0)
    report["duration_s"] = time.monotonic() - start
    _cleanup(config, pid, workdir)
    report.update(_verdict(status, usage, report, limits))
    return report


def _read_all(fd):
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _watch(pid, out_r, err_r, limits, start):
    """Read stdout/stderr until the process ends; kill it at the wall-clock limit or when a
    stream passes its cap."""
    cap = limits["output_bytes"]
    kept = {out_r: bytearray(), err_r: bytearray()}
    sizes = {out_r: 0, err_r: 0}
    killed_for = None
    sel = selectors.DefaultSelector()
    pidfd = os.pidfd_open(pid)
    sel.register(pidfd, selectors.EVENT_READ)
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    deadline = start + limits["wall_s"]
    exited_at = None
    open_streams = 2
    while open_streams:
        now = time.monotonic()
        if exited_at is None and now >= deadline and killed_for is None:
            killed_for = "timeout"
            _kill(pid)
        # after the process ended, its leftovers (only without a pid namespace) get 0.2 s
        if exited_at is not None and now - exited_at > 0.2:
            break
        wait = max(0.0, deadline - now) if exited_at is None else 0.05
        for key, _ in sel.select(timeout=min(wait, 1.0) if killed_for is None else 0.05):
            fd = key.fd
            if fd == pidfd:
                sel.unregister(pidfd)
                exited_at = time.monotonic()
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(fd)
                open_streams -= 1
                continue
            sizes[fd] += len(chunk)
            room = cap - len(kept[fd])
            if room > 0:
                kept[fd] += chunk[:room]
            if sizes[fd] > cap and killed_for is None:
                killed_for = "output-limit"
                _kill(pid)
    sel.close()
    os.close(pidfd)
    for fd in (out_r, err_r):
        os.close(fd)
    return {
        "stdout": base64.b64encode(bytes(kept[out_r])).decode(),
        "stderr": base64.b64encode(bytes(kept[err_r])).decode(),
        "stdout_bytes": sizes[out_r],
        "stderr_bytes": sizes[err_r],
        "killed_for": killed_for,
    }


def _kill(pid):
    """SIGKILL the program's process group (with a pid namespace, its pid 1: the kernel then
    kills everything in the namespace)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _cleanup(config, pid, workdir):
    if config["namespaces"]:
        return  # the pid namespace and the mount namespace's tmpfs died with the process
    _kill(pid)
    uid = config.get("uid")
    if uid is not None:  # every process left with the execution's uid
        reaper = os.fork()
        if reaper == 0:
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(reaper, 0)
    shutil.rmtree(workdir, ignore_errors=True)


def _verdict(status, usage, report, limits):
    peak_mb = usage.ru_maxrss / 1024
    cpu_s = usage.ru_utime + usage.ru_stime
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    tail = base64.b64decode(report["stderr"])[-2048:].decode(errors="replace")
    if report["killed_for"]:
        verdict = report["killed_for"]
    elif sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits["cpu_s"]):
        verdict = "timeout"
    elif code == 0:
        verdict = "ok"
    elif "MemoryError" in tail.strip().rsplit("\n", 1)[-1] or (
        sig is not None and peak_mb >= 0.9 * limits["memory_mb"]
    ):
        verdict = "memory"
    elif sig is not None:
        verdict = "killed"
    else:
        verdict = "error"
    return {
        "status": verdict,
        "exit_code": code,
        "signal": sig,
        "peak_memory_mb": round(peak_mb, 2),
        "cpu_s": round(cpu_s, 4),
    }


# ---- the server loop -------------------------------------------------------------------------


def serve(config):
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    if not config["namespaces"]:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        if config["namespaces"]:
            enter_user_namespace()
    except OSError as e:
        send(wfd, {"ready": False, "error": str(e)})
        return
    send(wfd, {"ready": True, "pid": os.getpid(), "python": sys.version.split()[0]})
    while (req := recv(rfd)) is not None:
        send(wfd, _run(config, req))


def _run(config, req):
    """One request, supervised in a forked child; its report comes back through a pipe."""
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        try:
            report = supervise(config, req)
        except BaseException:
            report = {"setup_error": traceback.format_exc()}
        try:
            send(report_w, report)
        finally:
            os._exit(0)
    os.close(report_w)
    data = _read_all(report_r)
    os.waitpid(pid, 0)
    if len(data) < 4:
        return {"setup_error": "the supervisor died without a report"}
    return json.loads(data[4:])


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
