"""The one registry of operators, read by the CLI, the YAML loader, the agent and the docs.

Operator classes register themselves when their module is imported. Operators are found through
the ``prepflow.operators`` entry-point group, built-in ones included (prepflow declares its own
entry point in pyproject.toml). An entry point names one of:

* a mapping ``{operator name: module}`` (an index): a lookup by name imports only that module,
  so finding one operator never imports the others (prepflow's own is
  ``prepflow.operators.index:MODULES``);
* a module (``package.module``), whose operator classes register when it is imported;
* an operator class (``package.module:Class``).

Nothing is imported at ``import prepflow``: entry points load at the first lookup that misses.
After adding, renaming or moving a built-in operator, rewrite prepflow's index with
``python -c "import prepflow.operators as o; o.write_index()"`` (a test fails while it is out
of date).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from prepflow.core.errors import UnknownOperatorError

if TYPE_CHECKING:
    from prepflow.core.operator import Operator

ENTRY_POINT_GROUP = "prepflow.operators"


class Registry:
    def __init__(self) -> None:
        self._ops: dict[str, type[Operator]] = {}
        self._index: dict[str, str] | None = None  # operator name -> module, from entry points
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

    def registered(self) -> dict[str, type[Operator]]:
        """The operators registered so far (no loading)."""
        return dict(self._ops)

    def index(self) -> dict[str, str]:
        """Operator name -> module from every index entry point (plugin modules and classes
        named by the others are imported on the way, which registers them)."""
        if self._index is None:
            self._index = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    value = ep.load()
                except Exception as e:  # a broken plugin must not take the registry down
                    self.load_errors[ep.name] = f"{type(e).__name__}: {e}"
                    continue
                if isinstance(value, Mapping):
                    self._index.update({str(k): str(v) for k, v in value.items()})
        return self._index

    def _import(self, module: str) -> None:
        if module in self.load_errors:
            return
        try:
            importlib.import_module(module)
        except ImportError as e:  # an optional extra is not installed: its operators are absent
            self.load_errors[module] = f"{type(e).__name__}: {e}"

    def _find(self, name: str) -> type[Operator] | None:
        if name not in self._ops and not self._loaded:
            module = self.index().get(name)
            if module is not None:
                self._import(module)
            if name not in self._ops:
                self.load()
        return self._ops.get(name)

    def load(self) -> None:
        """Import every indexed module and every plugin, once."""
        if self._loaded:
            return
        self._loaded = True
        for module in sorted(set(self.index().values())):
            self._import(module)
        if not self._ops and not self.load_errors:
            self.load_errors[ENTRY_POINT_GROUP] = (
                "no operator entry points found: is prepflow installed (pip install -e .)?"
            )

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
