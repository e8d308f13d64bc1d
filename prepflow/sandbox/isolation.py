"""How a sandbox worker is started on this machine: with namespaces (bubblewrap) or, when that
is impossible, with rlimits only.

With bubblewrap the worker sees a read-only system (``/usr``, the ``/bin``/``/lib`` links, a
few files of ``/etc``, the Python installation), an empty ``/tmp``, ``/dev``, a ``/scratch``
mount point and nothing else: no home, no ``/root``, no ``/work``, no run directory. It gets
new pid, network, IPC, UTS and cgroup namespaces, an empty environment, and its own user
namespace (created by the fork server, see ``zygote.py``). Run by root, bubblewrap builds that
view and ``setpriv`` then drops the worker to a uid of its own (never a real user's), with no
capabilities: RLIMIT_NPROC then counts exactly that worker's processes. Run by another user,
bubblewrap works unprivileged through a user namespace.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: Every protection a worker with namespaces has (names used in results and ``sandbox check``).
ALL_PROTECTIONS = (
    "user",  # its own user namespace (uid 1000 inside); no further user namespaces
    "uid",  # an unprivileged uid outside: as root, one of its own per worker; else the caller's
    "pid",  # a pid namespace per execution: sees only its processes, all killed at the end
    "net",  # a network namespace per execution: no interface but a down loopback
    "mount",  # read-only system, no home/work/run dirs, private /tmp and scratch tmpfs
    "ipc",
    "uts",
    "caps",  # no capabilities, no_new_privs
    "rlimits",  # CPU, memory, processes, file size, open files
)
#: Outside uids handed to root-started workers: above any real account, unique per worker.
UID_BASE = 1_700_000_000
#: Processes of the worker's uid besides the program: the fork server and the supervisor.
WORKER_PROCESSES = 2
_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "mime.types",
)
_TOP_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:1000:1000:sandbox:/scratch:/bin/sh\n"
_GROUP = "root:x:0:\nsandbox:x:1000:\n"
_uids = itertools.count()


@dataclass(frozen=True)
class LaunchPlan:
    """The command that starts one worker, and what it protects."""

    argv: tuple[str, ...]
    config: dict
    protections: tuple[str, ...]
    #: protection -> why it is missing on this machine
    missing: dict[str, str] = field(default_factory=dict)
    #: "{name}" in argv -> content: handed to bwrap as a file descriptor at launch
    data_files: dict[str, str] = field(default_factory=dict)
    scratch_root: str | None = None

    @property
    def namespaces(self) -> bool:
        return bool(self.config.get("namespaces"))


def zygote_path() -> Path:
    return Path(__file__).with_name("zygote.py")


def default_python() -> str:
    """The interpreter programs run with: the base installation behind the running one (a
    virtual environment's packages stay outside the sandbox)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def find_bwrap() -> str | None:
    return os.environ.get("PREPFLOW_BWRAP") or shutil.which("bwrap")


def plan(python: str | None = None, *, tmp_mb: int = 64, namespaces: bool = True) -> LaunchPlan:
    """The launch plan for one worker on this machine (each call gets a fresh uid when root)."""
    python = os.path.realpath(python or default_python())
    bwrap = find_bwrap() if namespaces else None
    if bwrap is None:
        why = "disabled" if not namespaces else "bwrap not found (apt-get install bubblewrap)"
        return fallback_plan(python, why)
    root = os.geteuid() == 0
    setpriv = shutil.which("setpriv") if root else None
    uid = _next_uid() if setpriv else None
    args = [bwrap, *_view(python)]
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent"]
    args += ["--new-session", "--clearenv"]
    missing: dict[str, str] = {}
    if root and setpriv:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", setpriv]
        args += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
        args += ["--bounding-set=-all", "--"]
    elif root:
        missing["uid"] = "setpriv not found (util-linux): the worker keeps uid 0 outside"
    else:  # not root: the caller's unprivileged uid outside, its files hidden by the mounts
        args += ["--unshare-user"]
    args += [python, "-I", "-B", "/.prepflow/zygote.py"]
    config = {
        "namespaces": True,
        "tmp_mb": tmp_mb,
        # not root: RLIMIT_NPROC counts the caller's other processes too
        "extra_processes": WORKER_PROCESSES if root else _processes_of(os.getuid()),
    }
    protections = tuple(p for p in ALL_PROTECTIONS if p not in missing)
    return LaunchPlan(
        tuple(args),
        config,
        protections,
        missing,
        data_files={
            "passwd": _PASSWD,
            "group": _GROUP,
            "zygote": zygote_path().read_text(encoding="utf-8"),
        },
    )


def fallback_plan(python: str, why: str) -> LaunchPlan:
    """Rlimits only, in a fresh process session with an empty environment; as root, programs
    also drop to a uid of their own (whose leftover processes are then all killed)."""
    root = os.geteuid() == 0
    prefix = Path(python).parent.parent
    drop = root and _readable_by_all(prefix)
    uid = _next_uid() if drop else None
    scratch_root = tempfile.mkdtemp(prefix="prepflow-sandbox-")
    if drop:
        os.chmod(scratch_root, 0o711)
    config = {
        "namespaces": False,
        "uid": uid,
        "scratch_root": scratch_root,
        "extra_processes": 0 if drop else _processes_of(os.getuid()),
    }
    missing = {p: why for p in ALL_PROTECTIONS if p not in ("rlimits", "uid")}
    if not root:
        missing["uid"] = "not root: programs run with the caller's uid"
    elif not drop:
        missing["uid"] = f"{prefix} is not readable by other users: programs keep uid 0"
    protections = ("rlimits", "uid") if drop else ("rlimits",)
    return LaunchPlan(
        (python, "-I", "-B", str(zygote_path())),
        config,
        protections,
        missing,
        scratch_root=scratch_root,
    )


def _view(python: str) -> list[str]:
    """bwrap arguments for the worker's filesystem: read-only system and interpreter only."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _TOP_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in _ETC:
        if Path("/etc", name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    prefix = Path(python).parent.parent
    if not str(prefix).startswith("/usr/"):
        for parent in reversed(prefix.parents[:-1]):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(prefix), str(prefix)]
    args += ["--perms", "0755", "--dir", "/.prepflow"]
    args += ["--perms", "0644", "--ro-bind-data", "{zygote}", "/.prepflow/zygote.py"]
    # the host's /proc only lets the fork server mount one for each pid namespace: every
    # program's process mounts its own over it before it runs anything
    args += ["--bind", "/proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/scratch"]
    args += ["--perms", "0644", "--ro-bind-data", "{passwd}", "/etc/passwd"]
    args += ["--perms", "0644", "--ro-bind-data", "{group}", "/etc/group"]
    return args


def _readable_by_all(path: Path) -> bool:
    """Whether any uid can reach ``path`` (every directory on the way is world-searchable)."""
    return all(p.stat().st_mode & 0o005 == 0o005 for p in (path, *path.parents))


def with_new_uid(plan: LaunchPlan) -> LaunchPlan:
    """The fallback ``plan`` for another worker: programs get a uid of their own (the cleanup
    kills every process of that uid, which must be this worker's alone)."""
    if plan.namespaces or plan.config.get("uid") is None:
        return plan
    return dataclasses.replace(plan, config={**plan.config, "uid": _next_uid()})


def _next_uid() -> int:
    return UID_BASE + ((os.getpid() & 0xFFFF) << 10) + (next(_uids) & 0x3FF)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count
