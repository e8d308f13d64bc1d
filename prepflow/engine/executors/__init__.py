"""Executors by name: ``--executor NAME`` picks one; the runner knows nothing else about it.

Built-in: ``local`` (the streaming executor of this machine) and ``ray`` (a Ray cluster). Others register through the
``prepflow.executors`` entry-point group (``name = "package.module:ExecutorClass"``), or with
:func:`register` (tests). A class is imported only when its name is asked for.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from prepflow.core.errors import ConfigError
from prepflow.engine.executors.base import ExecOptions, Execution, Executor

ENTRY_POINT_GROUP = "prepflow.executors"
_BUILTIN = {
    "local": "prepflow.engine.executors.local:LocalExecutor",
    "ray": "prepflow.engine.executors.ray:RayExecutor",  # needs the ray extra
}
_REGISTERED: dict[str, type[Executor]] = {}


def register(cls: type[Executor]) -> None:
    """Make ``cls`` available as ``--executor cls.name``."""
    _REGISTERED[cls.name] = cls


def names() -> list[str]:
    return sorted(
        {*_BUILTIN, *_REGISTERED, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))}
    )


def get(name: str) -> type[Executor]:
    """The executor class called ``name``; a clear error listing the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            raise ConfigError(f"unknown executor {name!r}; available: {', '.join(names())}")
        cls = found[0].load()
    else:
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise ConfigError(f"executor {name!r} is not an Executor subclass")
    return cls


__all__ = ["ExecOptions", "Execution", "Executor", "get", "names", "register"]
