"""Isolated execution of untrusted programs: namespaces (bubblewrap), a dropped uid, rlimits,
a wall-clock kill of the whole process tree, capped output and a scratch directory that
disappears. ``open_sandbox()`` gives the :class:`~prepflow.core.context.Sandbox` the engine
hands to operators; ``prepflow sandbox check`` says which protections are active here."""

from prepflow.sandbox.pool import ProcessSandbox, open_sandbox
from prepflow.sandbox.worker import SandboxError, SandboxUnavailable

__all__ = ["ProcessSandbox", "SandboxError", "SandboxUnavailable", "open_sandbox"]
