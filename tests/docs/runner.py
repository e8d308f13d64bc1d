"""Running a document's runnable blocks, in order, the way a reader would.

Every document gets a fresh directory holding a copy of ``examples/`` and a link to the test
data (``tests/data``: documents, Text-to-SQL databases), never written to; its blocks run there
one after the other, as if from the repository root, so a block may use what an earlier one
wrote.
Python blocks run each in a fresh interpreter (the registry is per process), compiled under the
document's name and line numbers so a traceback points into the Markdown. Shell blocks run one
command at a time (backslash continuations joined) with the venv's ``prepflow`` first on PATH.
``llm`` blocks get the scripted OpenAI-compatible server, which answers every structured request
with a valid instance of its schema and every other one with a short text.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prepflow.testing import ChatRequest, ScriptedServer  # the test server: one import
from tests.docs.mdscan import EXAMPLE_BASE_URL, PYTHON, REPO, Block, shown

#: What an ``llm`` block's model says when no schema is asked for: short, with a final answer.
PLAIN_REPLY = "A short, correct answer. The final result is \\boxed{14}."
TIMEOUT_S = 300
_DRIVER = (
    "import sys; code, name, line = sys.argv[1:]; "
    "src = '\\n' * (int(line) - 1) + open(code, encoding='utf-8').read(); "
    "exec(compile(src, name, 'exec'), {'__name__': '__main__'})"
)


class BlockFailed(AssertionError):
    """A runnable block stopped working; the message starts with its file and line."""


def run_blocks(blocks: list[Block]) -> None:
    """Run ``blocks`` (of one document) in order in a fresh copy of the examples."""
    with tempfile.TemporaryDirectory(prefix="prepflow-docs-") as tmp:
        work = Path(tmp)
        shutil.copytree(REPO / "examples", work / "examples")
        (work / "tests").mkdir()
        (work / "tests" / "data").symlink_to(REPO / "tests" / "data")
        for block in blocks:
            run_block(block, work)


def run_block(block: Block, work: Path) -> None:
    with _serving(block) as base_url:
        code = block.code.replace(EXAMPLE_BASE_URL, base_url) if base_url else block.code
        if block.file:
            (work / block.file).parent.mkdir(parents=True, exist_ok=True)
            (work / block.file).write_text(code, encoding="utf-8")
        elif block.excerpt:
            _check_excerpt(block, work)
        elif block.lang in PYTHON:
            _python(block, code, work)
        else:
            for line, command in shell_commands(code, block.line):
                first = command.splitlines()[0].removesuffix("\\").strip()
                _run(
                    ["bash", "-o", "pipefail", "-c", command],
                    work,
                    f"{_where(block, line)}: $ {first}",
                )


def shell_commands(code: str, first_line: int) -> list[tuple[int, str]]:
    """(line, command) for each command of a shell block: a command goes on while a line ends
    in a backslash or a quote is open; comment lines and blanks between commands are skipped."""
    commands: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for i, raw in enumerate(code.splitlines()):
        if not parts and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if not parts:
            start = first_line + i
        parts.append(raw)
        text = "\n".join(parts)
        if not raw.rstrip().endswith("\\") and _complete(text):
            commands.append((start, text))
            parts = []
    if parts:
        commands.append((start, "\n".join(parts)))
    return commands


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def _check_excerpt(block: Block, work: Path) -> None:
    """Each line of the block, in order, is a line of the quoted file (others may lie between)."""
    path = work / block.excerpt if (work / block.excerpt).exists() else REPO / block.excerpt
    if not path.is_file():
        raise BlockFailed(f"{block.where}: excerpt of {block.excerpt}, which does not exist")
    original = iter(line.rstrip() for line in path.read_text(encoding="utf-8").splitlines())
    for i, line in enumerate(block.code.splitlines()):
        if line.strip() and line.rstrip() not in original:
            raise BlockFailed(
                f"{_where(block, block.line + i)}: not in {block.excerpt} (or out of order): {line}"
            )


def _python(block: Block, code: str, work: Path) -> None:
    source = work / ".block.py"
    source.write_text(code, encoding="utf-8")
    argv = [sys.executable, "-c", _DRIVER, str(source), shown(block.path), str(block.line)]
    _run(argv, work, f"{block.where}: python block")


def _run(argv: list[str], work: Path, label: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    try:
        done = subprocess.run(
            argv, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise BlockFailed(f"{label}: still running after {TIMEOUT_S} s") from None
    if done.returncode != 0:
        out = (done.stdout + done.stderr)[-4000:]
        raise BlockFailed(f"{label}: exit status {done.returncode}\n{out}")


def _where(block: Block, line: int) -> str:
    return f"{shown(block.path)}:{line}"


@contextmanager
def _serving(block: Block) -> Iterator[str | None]:
    if "llm" not in block.flags:
        yield None
        return
    with ScriptedServer(answer, model="my-model") as server:  # the model the docs name
        yield server.url
        if server.responder_errors:
            raise BlockFailed(f"{block.where}: the test server failed: {server.responder_errors}")


def answer(req: ChatRequest) -> str:
    """A stand-in model: a valid instance of the requested schema, else a short text."""
    return json.dumps(instance(req.schema, req.schema)) if req.schema else PLAIN_REPLY


def instance(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A value valid against ``schema``: the first choice, the top of a range, minimum sizes."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return instance(root.get("$defs", root.get("definitions", {}))[name], root)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: instance(v, root) for k, v in props.items()}
    if kind == "array":
        n = max(schema.get("minItems", 1), 1)
        return [_distinct(instance(schema.get("items", {}), root), i) for i in range(n)]
    if kind in ("integer", "number"):
        top = schema.get("maximum", schema.get("minimum", 1))
        return int(top) if kind == "integer" else float(top)
    if kind == "boolean":
        return True
    return "ok"


def _distinct(value: Any, i: int) -> Any:
    """Items of a list differ (a dedup step would otherwise keep one)."""
    return f"{value} {i + 1}" if isinstance(value, str) else value
