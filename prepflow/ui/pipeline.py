"""A run's pipeline: its YAML, compiled against the run's input columns with the compile the CLI
uses, step by step (columns read, added, removed; parameters); and the same compile for YAML
being edited, problem by problem.

Compiling imports the modules a pipeline names; the dashboard imports only those the run itself
imported (it ran them already), never a module named by text sent to it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prepflow.core.columns import Schema, schema_of
from prepflow.core.errors import CompileError, PrepflowError
from prepflow.core.operator import ID
from prepflow.data import shardfile
from prepflow.data.runstore import INPUT_STEP, shard_file
from prepflow.engine.compiler import Plan, compile_pipeline
from prepflow.engine.spec import PipelineSpec, load_yaml
from prepflow.ui.present import display, masked

_WHERE = "<yaml>"  # how the loader names YAML given as text
_COMPILING = threading.Lock()  # the registry and user imports are loaded once, by one thread


def text(run_dir: Path) -> str:
    """The run's pipeline.yaml (credentials were never written there; URLs masked again)."""
    return masked((run_dir / "pipeline.yaml").read_text(encoding="utf-8"))


def spec(run_dir: Path) -> PipelineSpec:
    return load_yaml(text(run_dir))


def input_schema(run_dir: Path) -> Schema | None:
    """The run's input columns, from its first input shard's footer."""
    try:
        schema = schema_of(shardfile.schema(shard_file(run_dir, "steps", INPUT_STEP, 0)))
    except FileNotFoundError:
        return None
    return {k: v for k, v in schema.items() if k != ID}


def check(yaml_text: str, run_dir: Path) -> dict[str, Any]:
    """Compile ``yaml_text`` against the run's input: {"problems": [...], "steps": [...]}."""
    try:
        pipeline = load_yaml(yaml_text if yaml_text.endswith("\n") else yaml_text + "\n")
    except PrepflowError as e:
        return {"problems": _problems(str(e)), "steps": []}
    try:
        allowed = set(spec(run_dir).imports)
    except (OSError, PrepflowError):
        allowed = set()  # the run's own pipeline is unreadable: import nothing
    refused = [i for i in pipeline.imports if i not in allowed]
    pipeline.imports = [i for i in pipeline.imports if i in allowed]
    problems = [
        f"imports: {i!r} is not imported by the dashboard (only the modules this run imported "
        "are); check it with `prepflow compile`"
        for i in refused
    ]
    with _COMPILING:
        try:
            plan = compile_pipeline(pipeline, input_schema=input_schema(run_dir))
        except CompileError as e:
            return {"problems": problems + e.problems, "steps": []}
        except PrepflowError as e:
            return {"problems": [*problems, str(e)], "steps": []}
    return {"problems": problems, "steps": steps(plan)}


def _problems(message: str) -> list[str]:
    """The problems in a loader's message: each begins with where it is (``<yaml>``), the lines
    after it (a YAML parser's pointer) belong to it."""
    problems: list[str] = []
    for line in message.splitlines():
        if line.startswith(_WHERE) or not problems:
            problems.append(line)
        else:
            problems[-1] += "\n" + line
    return problems


def steps(plan: Plan) -> list[dict[str, Any]]:
    """Each compiled step: its operator, kind, the columns it reads, adds and removes, and its
    parameters (the ones set in the YAML marked)."""
    out = []
    for s in plan.steps:
        params = s.op.params.model_dump(mode="json")
        out.append(
            {
                "index": s.index,
                "name": s.name,
                "op": s.op.name,
                "kind": str(s.op.kind),
                "llm": s.op.requires.llm,
                "global": s.op.is_global,
                "reads": [s.op.col(c.name) for c in s.op.required_inputs()],
                "adds": [c for c in s.schema_out if c not in s.schema_in],
                "removes": [c for c in s.schema_in if c not in s.schema_out],
                "params": [
                    {"name": k, "value": masked(display(v)), "set": k in s.spec.params}
                    for k, v in params.items()
                ],
            }
        )
    return out


def compiled(run_dir: Path) -> dict[str, Any]:
    """The run's own pipeline, compiled: {"yaml", "problems", "steps"}."""
    try:
        yaml_text = text(run_dir)
    except OSError as e:
        return {"yaml": "", "problems": [f"pipeline.yaml: {e.strerror}"], "steps": []}
    return {"yaml": yaml_text, **check(yaml_text, run_dir)}
