"""Isolated execution of untrusted programs (and, in :mod:`prepflow.sandbox.sql`, of SQL on
read-only databases): namespaces (bubblewrap), a dropped uid, rlimits,
a wall-clock kill of the whole process tree, capped output and a scratch directory that
disappears. ``open_sandbox()`` gives the :class:`~prepflow.core.context.Sandbox` the engine
hands to operators; ``prepflow sandbox check`` says which protections are active here.

Names load on first use, so that ``prepflow --help`` (which mounts ``prepflow.sandbox.cli``)
does not import the sandbox, nor pyarrow through the core protocols.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prepflow.sandbox.pool import ProcessSandbox, open_sandbox
    from prepflow.sandbox.worker import SandboxError, SandboxUnavailable

_WHERE = {
    "ProcessSandbox": "prepflow.sandbox.pool",
    "open_sandbox": "prepflow.sandbox.pool",
    "SandboxError": "prepflow.sandbox.worker",
    "SandboxUnavailable": "prepflow.sandbox.worker",
}
__all__ = ["ProcessSandbox", "SandboxError", "SandboxUnavailable", "open_sandbox"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'prepflow.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
