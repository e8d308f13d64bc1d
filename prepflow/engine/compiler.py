"""compile(): resolve operators, check columns, types, parameters and requirements, all at once.

Nothing runs and nothing is spent here. The result is a :class:`Plan` that the executor follows;
every step carries a fingerprint of (operator, version, parameters, bindings, prompt, upstream),
which is what resume compares.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from prepflow.core.columns import Schema, compatible, schema_of
from prepflow.core.errors import CompileError, PrepflowError
from prepflow.core.operator import ID, Kind, Operator
from prepflow.core.registry import registry
from prepflow.engine.spec import PipelineSpec, StepSpec


@dataclass
class CompiledStep:
    index: int  # 1-based; 0 is the input
    spec: StepSpec
    op: Operator
    fingerprint: str
    schema_in: Schema
    schema_out: Schema

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dirname(self) -> str:
        return f"{self.index:02d}-{self.name}"

    @property
    def mode(self) -> str:
        """How the executor runs it: ``global`` (passes), ``async`` (event loop) or ``sync``."""
        if self.op.is_global:
            return "global"
        return "async" if self.op.is_async else "sync"


@dataclass
class Plan:
    spec: PipelineSpec
    steps: list[CompiledStep]
    input_schema: Schema
    estimate: dict[str, int] = field(default_factory=dict)
    estimated_rows: int | None = None

    @property
    def needs_llm(self) -> bool:
        return any(s.op.requires.llm for s in self.steps)

    def render(self) -> str:
        """A plain-text plan: one line per step with its columns and estimated LLM work."""
        rows = [
            f"pipeline {self.spec.name}: {len(self.steps)} steps"
            + (f", ~{self.estimated_rows:,} input rows" if self.estimated_rows else "")
        ]
        rows.append(
            f"  input columns: {', '.join(f'{k}:{v}' for k, v in self.input_schema.items() if k != ID)}"
        )
        for s in self.steps:
            ins = ", ".join(s.op.col(c.name) for c in s.op.required_inputs())
            added = [c for c in s.schema_out if c not in s.schema_in]
            removed = [c for c in s.schema_in if c not in s.schema_out]
            change = "".join(
                [
                    f" +[{', '.join(added)}]" if added else "",
                    f" -[{', '.join(removed)}]" if removed else "",
                ]
            )
            flags = "".join(
                [" [global]" if s.op.is_global else "", " [llm]" if s.op.requires.llm else ""]
            )
            est = s.op.estimate(self.estimated_rows or 0) if self.estimated_rows else {}
            est_txt = "  " + ", ".join(f"~{v:,} {k}" for k, v in est.items()) if est else ""
            rows.append(
                f"  {s.index:>2}. {s.name:<24} {s.op.name} ({s.op.kind}){flags} "
                f"reads [{ins}]{change}{est_txt}"
            )
        if self.estimate:
            rows.append(
                "  estimated LLM work: " + ", ".join(f"{v:,} {k}" for k, v in self.estimate.items())
            )
        return "\n".join(rows)


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def import_user_modules(imports: list[str], base: Path | None) -> list[ModuleType]:
    """Import modules or ``.py`` files that define user operators (they register on import)."""
    modules = []
    for item in imports:
        if item.endswith(".py"):
            path = Path(item) if Path(item).is_absolute() or base is None else base / item
            if not path.is_file():
                raise PrepflowError(f"imports: no such file {path}")
            mod_name = f"prepflow_user_{fingerprint(str(path.resolve()))}"
            if mod_name not in sys.modules:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            modules.append(sys.modules[mod_name])
        else:
            modules.append(importlib.import_module(item))
    return modules


def compile_pipeline(
    spec: PipelineSpec,
    *,
    input: str | Path | None = None,
    input_schema: Schema | None = None,
    base_fingerprint: str = "",
    estimated_rows: int | None = None,
    reach_serving: bool = False,
) -> Plan:
    """Check ``spec`` against the input and return the plan; raise CompileError with every
    problem found in one pass. A step that cannot be built (unknown operator, bad parameters)
    does not stop the checks: later steps are checked against the best guess of the schema
    (the step's declared outputs), and a column that guess lacks is reported as possibly coming
    from that step. ``reach_serving``: also ask an OpenAI-compatible server whether it answers."""
    problems: list[str] = []
    if input_schema is None and input is not None:
        from prepflow.data.readers import open_input

        try:
            input_schema = schema_of(open_input(input).schema())
        except PrepflowError as e:
            problems.append(f"input: {e}")
    try:
        import_user_modules(spec.imports, spec.source.parent if spec.source else None)
    except Exception as e:
        problems.append(f"imports: {type(e).__name__}: {e}")

    schema: Schema = {ID: "int", **(input_schema or {})}
    known_schema = input_schema is not None
    unsure: list[str] = []  # labels of earlier steps whose outputs are a guess
    steps: list[CompiledStep] = []
    upstream = base_fingerprint
    needs_llm = False
    for i, s in enumerate(spec.steps, 1):
        label = s.label(i)
        op, guessed = _build_step(s, label, problems)
        if op is None:
            upstream = fingerprint(upstream, s.op, s.params, s.bindings)
            schema = {**schema, **dict.fromkeys(s.outputs.values(), "any")}
            unsure.append(f"step {i} '{s.name}'")
            continue
        if guessed:
            unsure.append(f"step {i} '{s.name}'")
        needs_llm |= op.requires.llm
        problems += [f"{label}: {p}" for p in op.check()] if not guessed else []
        problems += _requirement_problems(label, op)
        if known_schema:
            problems += _column_problems(label, op, schema, unsure)
        try:
            out = op.output_schema(schema)
        except PrepflowError as e:
            problems.append(f"{label}: {e}")
            out = schema
        upstream = fingerprint(
            upstream,
            op.name,
            op.version,
            op.params.model_dump(mode="json"),
            s.bindings,
            op.fingerprint_extra(),
        )
        if not guessed:
            steps.append(CompiledStep(i, s, op, upstream, schema, out))
        schema = out
    if needs_llm:
        # imported here: a pipeline without LLM steps loads no serving module (start-up time)
        from prepflow.serving.check import serving_problems

        problems += serving_problems(spec.serving, reach=reach_serving)
    if any(s.op.requires.sandbox for s in steps):
        problems += _sandbox_problems(spec)
    if problems:
        raise CompileError(problems)
    plan = Plan(spec, steps, input_schema or {}, estimated_rows=estimated_rows)
    if estimated_rows:
        for st in steps:
            for k, v in st.op.estimate(estimated_rows).items():
                plan.estimate[k] = plan.estimate.get(k, 0) + v
    return plan


def _build_step(s: StepSpec, label: str, problems: list[str]) -> tuple[Operator | None, bool]:
    """The step's bound operator, and whether it is only a guess: with bad parameters, the
    operator built from its defaults (so later steps can still be checked); None when the
    operator is unknown or cannot be built at all."""
    try:
        cls = registry.get(s.op)
    except PrepflowError as e:
        problems.append(f"{label}: {e}")
        return None, False
    try:
        return cls(**s.params).bind(s.bindings), False
    except PrepflowError as e:
        problems.append(f"{label}: {e}")
    try:
        return cls().bind(s.bindings), True
    except PrepflowError:
        return None, False


def _column_problems(label: str, op: Operator, schema: Schema, unsure: list[str]) -> list[str]:
    problems = []
    for col in op.required_inputs():
        actual = op.col(col.name)
        if actual not in schema:
            avail = ", ".join(c for c in schema if c != ID)
            maybe = f" (unless {' or '.join(unsure)} makes it)" if unsure else ""
            problems.append(
                f"{label}: input column {actual!r} not found (declared as {col.name!r}); "
                f"available: {avail}{maybe}"
            )
        elif not compatible(col.type, schema[actual]):
            problems.append(
                f"{label}: input column {actual!r} is {schema[actual]}, {op.name} expects {col.type}"
            )
    return problems


def _sandbox_problems(spec: PipelineSpec) -> list[str]:
    """A step runs code: in strict mode (``settings.sandbox.strict``) the namespaces must be
    available here, since the rlimit-only fallback is refused at run time."""
    from prepflow.sandbox.isolation import find_bwrap  # only pipelines that run code load it

    settings = spec.settings.get("sandbox") or {}
    if isinstance(settings, dict) and settings.get("strict") and find_bwrap() is None:
        return [
            "settings.sandbox.strict: bubblewrap is not installed, and strict mode refuses the "
            "weaker rlimit-only sandbox: apt-get install bubblewrap (prepflow sandbox check says more)"
        ]
    return []


def _requirement_problems(label: str, op: Operator) -> list[str]:
    req = op.requires
    out = []
    missing = [p for p in req.packages if importlib.util.find_spec(p) is None]
    if missing:
        extra = (
            f"pip install 'prepflow[{req.extra}]'"
            if req.extra
            else f"pip install {' '.join(missing)}"
        )
        out.append(f"{label}: needs package(s) {', '.join(missing)}: {extra}")
    if req.llm and op.kind is not Kind.FILTER and not op.outputs:
        out.append(f"{label}: an LLM operator must declare output columns")
    return out
