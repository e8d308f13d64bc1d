"""Imports flow one way (DESIGN.md, "Layers and folders"), with no cycles, hidden or not.

Every import statement of the package is read, function-level ones included, and each module is
placed in a layer; a layer may import only the layers below it. Then each layer is imported alone
in a fresh interpreter, and the prepflow modules that loaded must all belong to allowed layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "prepflow"

#: layer -> the layers it may import (itself included). ``operators.common`` is the toolkit
#: every domain may use; a domain may import only itself, the toolkit and core.
ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "serving": {"core", "serving"},
    "sandbox": {"core", "sandbox"},
    "operators.common": {"core", "operators.common"},
    "operators": {"core", "operators.common"},  # plus the domain itself (checked apart)
    "engine": {"core", "data", "serving", "sandbox", "engine"},
    "testing": {"core", "data", "serving", "sandbox", "engine", "operators", "testing"},
    "templates": {"core", "templates"},
    # applications over the engine: evaluations (they use operators' public modules directly)
    "evals": {
        "core",
        "data",
        "serving",
        "sandbox",
        "engine",
        "operators",
        "operators.common",
        "evals",
    },
    "ui": {"core", "data", "serving", "sandbox", "engine", "ui"},
    # the command's side of warm start: the standard library only (it runs first on each command)
    "warm": {"warm"},
    "cli": {
        "core",
        "data",
        "serving",
        "sandbox",
        "engine",
        "operators",
        "operators.common",
        "templates",
        "evals",
        "ui",
        "warm",
        "cli",
    },
    "package": {"core", "engine", "cli", "warm"},  # prepflow/__init__.py (lazy names), __main__.py
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "package"
    if parts[1] == "operators":
        if len(parts) == 2 or parts[2] in ("common", "index"):  # the package, toolkit, index
            return "operators.common"
        return "operators"
    if parts[1] == "pipelines":
        return "core"  # data files only
    return parts[1]


def domain_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[1] == "operators" and len(parts) >= 3 else None


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported prepflow module, line, under TYPE_CHECKING) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = (
        module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    )
    out = []
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # ``from pkg import sub`` depends on pkg.sub (resolved below), not on all of pkg
            names = [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name == "prepflow" or name.startswith("prepflow."):
                out.append((name, node.lineno, id(node) in typing_only))
    return out


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module an imported name refers to (``from a.b import c``: a.b.c or a.b)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_every_import_points_down_the_layers() -> None:
    known = modules()
    problems = []
    for module, path in sorted(known.items()):
        layer = layer_of(module)
        for name, line, _ in imports_of(path):
            target = resolve(name, known)
            if target is None:
                continue
            target_layer = layer_of(target)
            allowed = ALLOWED[layer] | (
                {"operators"}
                if layer == "operators" and domain_of(target) == domain_of(module)
                else set()
            )
            if target_layer == "package" and layer != "package":
                allowed = allowed | {"package"} if target == "prepflow" else allowed
            if target_layer not in allowed:
                problems.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {layer} imports {target}"
                )
            elif (
                layer == "operators"
                and target_layer == "operators"
                and domain_of(target) != domain_of(module)
            ):
                problems.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: domain imports {target}"
                )
            if target_layer == "testing" and layer != "testing":
                problems.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: production imports {target}"
                )
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_no_import_cycles_even_through_function_level_imports() -> None:
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for name, _, typing_only in imports_of(path):
            target = resolve(name, known)
            if target is not None and target != module and not typing_only:
                graph[module].add(target)
    # a package's __init__ importing its own submodules is not a cycle of meaning
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    out.append(component)
    return out


@pytest.mark.parametrize(
    "layer", ["core", "data", "serving", "sandbox", "operators.common", "engine", "ui"]
)
def test_each_layer_imports_alone_without_loading_a_higher_one(layer: str) -> None:
    known = [m for m in modules() if layer_of(m) == layer]
    code = (
        "import importlib, sys\n"
        f"for m in {sorted(known)!r}:\n"
        "    importlib.import_module(m)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('prepflow.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = {layer_of(m) for m in done.stdout.split()}
    assert loaded <= ALLOWED[layer] | {"package"}, (
        f"{layer} loaded {sorted(loaded - ALLOWED[layer])}"
    )
