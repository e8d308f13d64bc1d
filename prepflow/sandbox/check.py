"""What ``prepflow sandbox check`` verifies: each protection, observed from inside a sandboxed
program and from the host, not merely configured."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass

import psutil

from prepflow.sandbox.pool import ProcessSandbox

#: Runs inside the sandbox; prints one JSON object of observations.
PROBE = r"""
import ctypes, json, os, resource, socket, sys
ask = json.loads(sys.stdin.read())
out = {}
try:
    socket.create_connection(("127.0.0.1", ask["port"]), timeout=2)
except OSError as e:
    out["net_error"] = type(e).__name__ + ": " + str(e)
out["interfaces"] = [n for _, n in socket.if_nameindex()]
out["pid"] = os.getpid()
out["pids_visible"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["stat"] = {}
for d in ask["host_dirs"]:
    try:
        st = os.stat(d)
        out["stat"][d] = [st.st_dev, st.st_ino]
    except OSError:
        pass
try:
    open("/usr/.prepflow-probe", "w")
    out["usr_writable"] = True
except OSError:
    out["usr_writable"] = False
libc = ctypes.CDLL(None, use_errno=True)
out["userns_created"] = libc.unshare(0x10000000) == 0
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
out["cap_eff"] = status["CapEff"].strip()
out["no_new_privs"] = status["NoNewPrivs"].strip() == "1"
out["uid"] = os.getuid()
out["hostname"] = socket.gethostname()
out["env"] = sorted(os.environ)
out["rlimits"] = {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                  for n in ("CPU", "AS", "NPROC", "FSIZE", "NOFILE")}
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Finding:
    protection: str
    active: bool
    evidence: str


def check(sandbox: ProcessSandbox) -> list[Finding]:
    """Run the probe in ``sandbox`` and judge every protection from what it saw."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    host_dirs = {}  # the host's directories, identified by device and inode (kept by binds)
    for d in ("/", "/root", "/home", "/work", "/tmp", "/var", os.getcwd(), os.path.expanduser("~")):
        with contextlib.suppress(OSError):
            st = os.stat(d)
            host_dirs[d] = [st.st_dev, st.st_ino]
    result = sandbox.run_python(
        PROBE, stdin=json.dumps({"port": port, "host_dirs": sorted(host_dirs)})
    )
    try:
        listener.accept()
        host_saw_connection = True
    except BlockingIOError:
        host_saw_connection = False
    finally:
        listener.close()
    if not result.ok:
        raise RuntimeError(f"the sandbox probe failed ({result.status}): {result.stderr[-2000:]}")
    seen = json.loads(result.stdout)
    outside = outside_uids(sandbox)
    seen["visible_host_dirs"] = [d for d, key in host_dirs.items() if seen["stat"].get(d) == key]
    return judge(seen, host_saw_connection, outside, sandbox)


def judge(
    seen: dict, host_saw_connection: bool, outside: set[int], sandbox: ProcessSandbox
) -> list[Finding]:
    """Findings from the probe's observations (``seen``) and the host's."""

    def f(name: str, ok: bool, evidence: str) -> Finding:
        why = sandbox.missing.get(name)
        return Finding(name, ok, evidence if ok or not why else f"{evidence} ({why})")

    others = [p for p in seen["pids_visible"] if p != seen["pid"]]
    hidden = not seen["visible_host_dirs"] and not seen["usr_writable"]
    loopback_only = set(seen["interfaces"]) <= {"lo"}
    # root starts workers under uids of their own; another user's workers keep its uid
    uid_ok = bool(outside) and 0 not in outside and (os.getuid() == 0 or outside == {os.getuid()})
    return [
        f(
            "user",
            not seen["userns_created"] and seen["uid"] != 0,
            f"uid {seen['uid']} inside; creating a user namespace "
            + ("succeeded" if seen["userns_created"] else "was refused"),
        ),
        f(
            "uid",
            uid_ok,
            f"outside uid(s) {sorted(outside) or '?'} (host runs as {os.getuid()})",
        ),
        f(
            "pid",
            seen["pid"] == 1 and not others,
            f"pid {seen['pid']}; other processes visible: {len(others)}",
        ),
        f(
            "net",
            not host_saw_connection and loopback_only,
            f"interfaces {seen['interfaces']}; connection to a host port "
            + ("ARRIVED" if host_saw_connection else f"failed ({seen.get('net_error', '?')})"),
        ),
        f(
            "mount",
            hidden,
            "visible host dirs: "
            + (", ".join(seen["visible_host_dirs"]) or "none")
            + "; /usr "
            + ("WRITABLE" if seen["usr_writable"] else "read-only"),
        ),
        f("uts", seen["hostname"] == "sandbox", f"hostname {seen['hostname']!r}"),
        f("ipc", "ipc" in sandbox.protections, "a new IPC namespace per execution (configured)"),
        f(
            "caps",
            int(seen["cap_eff"], 16) == 0 and seen["no_new_privs"],
            f"effective capabilities {seen['cap_eff']}, no_new_privs {seen['no_new_privs']}",
        ),
        f(
            "rlimits",
            all(v > 0 for v in seen["rlimits"].values()),
            ", ".join(f"{k} {v}" for k, v in seen["rlimits"].items())
            + f"; environment: {', '.join(seen['env'])}",
        ),
    ]


def outside_uids(sandbox: ProcessSandbox) -> set[int]:
    """Real uids, as the host sees them, of the sandbox's Python processes."""
    uids = set()
    for pid in sandbox.worker_pids():
        with contextlib.suppress(psutil.Error):
            worker = psutil.Process(pid)
            for p in [worker, *worker.children(recursive=True)]:
                if "python" in p.name():
                    uids.add(p.uids().real)
    return uids
