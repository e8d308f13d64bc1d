"""The declarative form of a pipeline: what YAML holds and what Python pipelines export to.

A :class:`PipelineSpec` is plain data (operator names, parameters, column bindings). Nothing here
resolves operators: that is the compiler's job, so every problem can be reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prepflow.core.errors import ConfigError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "pipelines"
_STEP_KEYS = {"op", "name", "params", "inputs", "outputs"}
_TOP_KEYS = {"name", "description", "serving", "steps", "imports", "settings"}


@dataclass
class StepSpec:
    op: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    #: where the step came from, for error messages ("pipeline.yaml:12")
    origin: str | None = None

    @property
    def bindings(self) -> dict[str, str]:
        return {**self.inputs, **self.outputs}

    def label(self, index: int) -> str:
        where = f" at {self.origin}" if self.origin else ""
        return f"step {index} '{self.name}' ({self.op}){where}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "name": self.name}
        for key in ("params", "inputs", "outputs"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d


@dataclass
class PipelineSpec:
    name: str
    steps: list[StepSpec]
    description: str = ""
    serving: dict[str, Any] | None = None
    #: modules or .py files (relative to the YAML file) that define user operators
    imports: list[str] = field(default_factory=list)
    #: executor defaults (shard_rows, workers, ...), overridable from the CLI
    settings: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        if self.imports:
            d["imports"] = list(self.imports)
        if self.serving:
            d["serving"] = dict(self.serving)
        if self.settings:
            d["settings"] = dict(self.settings)
        d["steps"] = [s.to_dict() for s in self.steps]
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def step(self, name: str) -> StepSpec:
        for s in self.steps:
            if s.name == name:
                return s
        raise ConfigError(f"no step named {name!r}; steps: {', '.join(s.name for s in self.steps)}")

    def apply_overrides(self, overrides: list[str]) -> None:
        """Apply ``step.param=value`` overrides (values parsed as YAML scalars: 10, true, [a, b]).

        A longer key sets inside a mapping and keeps its other entries:
        ``solve.generation.max_tokens=256``, ``serving.launch.n_parallel=8``.
        """
        for item in overrides:
            key, sep, raw = item.partition("=")
            step_name, *path = key.split(".")
            if not sep or not path or not all(path):
                raise ConfigError(f"--set {item!r}: expected STEP.PARAM=VALUE")
            try:
                value = yaml.safe_load(raw) if raw else ""
            except yaml.YAMLError as e:
                raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None
            if step_name == "serving":
                self.serving = _set_path(self.serving or {}, path, value, item)
            else:
                step = self.step(step_name)
                step.params = _set_path(step.params, path, value, item)


def _set_path(mapping: dict[str, Any], path: list[str], value: Any, item: str) -> dict[str, Any]:
    """A copy of ``mapping`` with ``value`` at ``path`` (nested mappings copied, not shared)."""
    head, *rest = path
    if not rest:
        return {**mapping, head: value}
    inner = mapping.get(head)
    if inner is None:
        inner = {}
    elif not isinstance(inner, dict):
        raise ConfigError(f"--set {item!r}: {head!r} is {inner!r}, not a mapping")
    return {**mapping, head: _set_path(inner, rest, value, item)}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "step"


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def load_yaml(source: str | Path) -> PipelineSpec:
    """Load a pipeline from a YAML file, a shipped pipeline name, or YAML text."""
    path = (
        resolve_pipeline_path(source)
        if isinstance(source, Path) or "\n" not in str(source)
        else None
    )
    try:
        text = path.read_text(encoding="utf-8") if path else str(source)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else f"not UTF-8 ({e.reason})"
        raise ConfigError(f"{path}: cannot read the pipeline ({reason})") from None
    where = str(path) if path else "<yaml>"
    try:
        root, data = _parse(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a pipeline is a mapping with a 'steps' list")
    problems = [
        f"{where}: unknown top-level key {k!r} (allowed: {', '.join(sorted(_TOP_KEYS))})"
        for k in data
        if k not in _TOP_KEYS
    ]
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(f"{where}: 'steps' must be a non-empty list")
        raw_steps = []
    step_nodes = _step_nodes(root)
    steps: list[StepSpec] = []
    for i, raw in enumerate(raw_steps, 1):
        line = step_nodes[i - 1].start_mark.line + 1 if i - 1 < len(step_nodes) else None
        origin = f"{where}:{line}" if line else where
        if not isinstance(raw, dict) or "op" not in raw:
            problems.append(f"{origin}: step {i} must be a mapping with an 'op' key")
            continue
        for k in raw:
            if k not in _STEP_KEYS:
                problems.append(
                    f"{origin}: step {i}: unknown key {k!r} (allowed: {', '.join(sorted(_STEP_KEYS))})"
                )
        for k in ("params", "inputs", "outputs"):
            if raw.get(k) is not None and not isinstance(raw[k], dict):
                problems.append(f"{origin}: step {i}: '{k}' must be a mapping")
        steps.append(
            StepSpec(
                op=str(raw["op"]),
                name=str(raw.get("name") or slug(str(raw["op"]))),
                params=dict(_mapping(raw, "params")),
                inputs={str(k): str(v) for k, v in _mapping(raw, "inputs").items()},
                outputs={str(k): str(v) for k, v in _mapping(raw, "outputs").items()},
                origin=origin,
            )
        )
    explicit = [str(r["name"]) for r in raw_steps if isinstance(r, dict) and r.get("name")]
    problems += [
        f"{where}: step name {n!r} is used more than once"
        for n in sorted({n for n in explicit if explicit.count(n) > 1})
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    for s, n in zip(steps, unique_names([s.name for s in steps]), strict=True):
        s.name = n
    serving = data.get("serving")
    if serving is not None and not isinstance(serving, dict):
        raise ConfigError(f"{where}: 'serving' must be a mapping")
    return PipelineSpec(
        name=str(data.get("name") or (path.stem if path else "pipeline")),
        description=str(data.get("description") or ""),
        steps=steps,
        serving=serving,
        imports=[str(x) for x in data.get("imports") or []],
        settings=dict(data.get("settings") or {}),
        source=path,
    )


#: libyaml's parser where PyYAML was built with it: 15x faster than the pure-Python one
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for step line numbers) and its data, from one parse; a syntax
    error is the pure-Python parser's, which quotes the line with a caret under the column."""
    loader = _FAST_LOADER(text)
    try:
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_document(root)
    except yaml.YAMLError:
        yaml.safe_load(text)
        raise
    finally:
        loader.dispose()


def _mapping(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    return value if isinstance(value, dict) else {}


def _step_nodes(root: yaml.Node | None) -> list[yaml.Node]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "steps" and isinstance(value, yaml.SequenceNode):
            return list(value.value)
    return []


def shipped_pipelines() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def resolve_pipeline_path(source: str | Path) -> Path:
    p = Path(source)
    try:
        if p.is_file():
            return p
    except OSError as e:
        raise ConfigError(f"{source}: cannot read the pipeline ({e.strerror})") from None
    shipped = SHIPPED_DIR / f"{source}.yaml"
    if shipped.is_file():
        return shipped
    names = shipped_pipelines()
    raise ConfigError(
        f"no pipeline file {str(source)!r} and no shipped pipeline of that name; "
        f"shipped: {', '.join(names) or 'none'}"
    )
