"""The one registry of operators, read by the CLI, the YAML loader, the agent and the docs.

Operator classes register themselves when their module is imported. Built-in operators live under
``prepflow.operators`` and are imported on first lookup (never at ``import prepflow``): a lookup
by name imports only the module that ``prepflow/operators/_index.py`` names for it, and listing
every operator imports them all. Third-party packages add theirs through the
``prepflow.operators`` entry-point group, loaded with the full listing or when a name is not a
built-in one.

After adding, renaming or moving a built-in operator, rewrite the index with
``python -c "from prepflow.core.registry import write_index; write_index()"`` (a test fails
while it is out of date; a stale entry only costs a full load, never a wrong operator).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prepflow.core.errors import UnknownOperatorError

if TYPE_CHECKING:
    from prepflow.core.operator import Operator

ENTRY_POINT_GROUP = "prepflow.operators"


class Registry:
    def __init__(self) -> None:
        self._ops: dict[str, type[Operator]] = {}
        self._loaded = False
        self.load_errors: dict[str, str] = {}

    def register(self, cls: type[Operator]) -> None:
        prior = self._ops.get(cls.name)
        if (
            prior is not None
            and prior.__qualname__ == cls.__qualname__
            and _file(prior) == _file(cls)
        ):
            return  # the same source file imported under two module names: keep the first
        if prior is not None and (prior.__module__, prior.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ValueError(
                f"operator name {cls.name!r} is taken by {prior.__module__}.{prior.__qualname__}"
            )
        self._ops[cls.name] = cls

    def unregister(self, name: str) -> None:
        self._ops.pop(name, None)

    def _load_indexed(self, name: str) -> None:
        """Import the built-in module that defines ``name``, if the index knows one."""
        from prepflow.operators._index import MODULES

        module = MODULES.get(name)
        if module is not None and module not in self.load_errors:
            try:
                importlib.import_module(module)
            except ImportError as e:  # an optional extra is not installed
                self.load_errors[module] = f"{type(e).__name__}: {e}"

    def _find(self, name: str) -> type[Operator] | None:
        if name not in self._ops and not self._loaded:
            self._load_indexed(name)
            if name not in self._ops:
                self.load()
        return self._ops.get(name)

    def load(self) -> None:
        """Import built-in operator modules and entry points once."""
        if self._loaded:
            return
        self._loaded = True
        import prepflow.operators as pkg

        for mod in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            if mod.name.rsplit(".", 1)[-1].startswith("_"):
                continue  # private helpers (prompt files, rule tables) are not operator modules
            try:
                importlib.import_module(mod.name)
            except ImportError as e:  # an optional extra is not installed: its operators are absent
                self.load_errors[mod.name] = f"{type(e).__name__}: {e}"
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as e:  # a broken plugin must not take the registry down
                self.load_errors[ep.name] = f"{type(e).__name__}: {e}"

    def get(self, name: str) -> type[Operator]:
        cls = self._find(name)
        if cls is not None:
            return cls
        close = difflib.get_close_matches(name, list(self._ops), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        if self.load_errors:
            hint += (
                " (some operator modules failed to import: "
                + "; ".join(f"{m}: {e}" for m, e in self.load_errors.items())
                + ")"
            )
        raise UnknownOperatorError(f"unknown operator {name!r}{hint}")

    def names(self) -> list[str]:
        self.load()
        return sorted(self._ops)

    def __contains__(self, name: str) -> bool:
        return self._find(name) is not None

    def info(self, name: str) -> dict[str, Any]:
        return describe(self.get(name))

    def all_info(self) -> list[dict[str, Any]]:
        return [describe(self._ops[n]) for n in self.names()]


def describe(cls: type[Operator]) -> dict[str, Any]:
    """Full metadata of an operator class as plain data (JSON/YAML friendly)."""
    doc = inspect.getdoc(cls) or ""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    params = []
    for pname, f in cls.Params.model_fields.items():
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        params.append(
            {
                "name": pname,
                "type": _type_repr(f.annotation),
                "default": default,
                "required": f.is_required(),
                "description": f.description or "",
            }
        )
    req = cls.requires
    return {
        "name": cls.name,
        "domain": cls.domain,
        "kind": str(cls.kind),
        "version": cls.version,
        "summary": summary,
        "description": doc,
        "inputs": [_column(c) for c in cls.inputs],
        "outputs": [_column(c) for c in cls.outputs],
        "params": params,
        "requires": {
            "llm": req.llm,
            "embedding": req.embedding,
            "sandbox": req.sandbox,
            "packages": list(req.packages),
            "extra": req.extra,
        },
        "global": cls.is_global,
        "module": f"{cls.__module__}:{cls.__qualname__}",
    }


def _column(c: Any) -> dict[str, Any]:
    return {
        "name": c.name,
        "type": c.type,
        "description": c.description,
        "configurable": c.configurable,
        "optional": c.optional,
    }


def _file(cls: type) -> str | None:
    try:
        return inspect.getfile(cls)
    except (TypeError, OSError):
        return None


def _type_repr(t: Any) -> str:
    if isinstance(t, type):
        return t.__name__
    return str(t).replace("typing.", "")


registry = Registry()


def builtin_index() -> dict[str, str]:
    """Operator name -> defining module, for every built-in operator (imports them all)."""
    registry.load()
    return {
        name: cls.__module__
        for name, cls in sorted(registry._ops.items())
        if cls.__module__.startswith("prepflow.operators.")
    }


def write_index() -> Path:
    """Rewrite ``prepflow/operators/_index.py`` from the operators the package defines."""
    import prepflow.operators as pkg

    path = Path(pkg.__path__[0]) / "_index.py"
    lines = "".join(f"    {name!r}: {module!r},\n" for name, module in builtin_index().items())
    path.write_text(
        '"""Which module defines each built-in operator, so that a lookup imports only that one.\n\n'
        'Generated by ``prepflow.core.registry.write_index()``; do not edit."""\n\n'
        f"MODULES = {{\n{lines}}}\n"
    )
    return path
