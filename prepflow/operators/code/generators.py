"""LLM operators of the code domain: tasks from seeds (self-instruct), instruction from code,
code from instruction, unit tests, code enhancement (docstrings, type hints), a quality judge,
and CRUXEval-style input/output items whose outputs come from running the code."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from prepflow.core.columns import Column
from prepflow.core.context import Limits
from prepflow.core.llm import LLMOperator, LLMParams, RowFailed, reply_text
from prepflow.core.operator import Kind, Requirements
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.code.source import fenced_code
from prepflow.operators.common.llm import (
    JUDGE_SYSTEM,
    FanOutGenerator,
    JudgeEvaluator,
    JudgeParams,
)

CODER_SYSTEM = "You are an expert Python programmer. You write correct, clear, tested code."

SELF_INSTRUCT_PROMPT = """\
Come up with {{ n }} new programming tasks. Here is an example task:

{{ seed }}

Requirements:
- each task asks for one self-contained Python function (name it in the task) that uses only \
the standard library;
- its result can be checked by unit tests: no input(), files, network, randomness or printing;
- the tasks differ from the example and from each other;
- each task is one to three sentences that say what the function takes and returns.

Reply with only a JSON object: {"items": ["task 1", "task 2", ...]}"""

CODE_TO_INSTRUCTION_PROMPT = """\
Here is some code:

```{{ language }}
{{ code }}
```

Write the programming task that this code solves, as a user would ask it: what to implement \
(name the functions or classes it must define), the inputs, the expected result and edge \
cases. Do not show the code or explain how it works. Reply with only the task."""

INSTRUCTION_TO_CODE_PROMPT = """\
{{ instruction }}

Write the solution in Python, using only the standard library. Do not read input, print, or \
include tests or example usage. Reply with only the code in one ```python block."""

PYTEST_PROMPT = """\
Task:
{{ instruction }}

Solution under test (it is in solution.py; the tests can use its names directly):
```python
{{ solution }}
```

Write exactly {{ n_tests }} pytest test functions (def test_...():), each with one or two \
plain assert statements, that check the task's requirements, including an edge case. Compute \
every expected value from the task, not from the solution. Do not redefine or import the \
solution's functions. Reply with only the code in one ```python block."""

DOCTEST_PROMPT = """\
Task:
{{ instruction }}

Solution under test:
```python
{{ solution }}
```

Write {{ n_tests }} doctest examples that check the task's requirements, each a `>>> ` call \
line followed by the exact expected output line. Compute every expected value from the task, \
not from the solution. Reply with only the examples in one ``` block."""

ENHANCE_PROMPT = """\
Improve the Python code below by {{ what }}. Do not change what the code does, its names or \
its structure. Reply with only the complete improved code in one ```python block.

```python
{{ code }}
```"""

ENHANCEMENTS = {
    "docstrings": "adding a concise docstring to every function and class (what it does, "
    "its arguments and return value)",
    "type_hints": "adding type hints to every function's parameters and return value",
    "both": "adding type hints to every function and a concise docstring to every function "
    "and class",
}

JUDGE_PROMPT = """\
Rate the quality of the following code{{ task_section }}:

```
{{ code }}
```

Judge correctness, readability, efficiency and robustness to edge cases. Give a short \
rationale (one or two sentences), then a score from {{ min_score }} (worst) to \
{{ max_score }} (best). Reply with only a JSON object: {"rationale": "...", "score": <number>}"""

CRUX_PROMPT = """\
Here is a Python function:

```python
{{ code }}
```

Propose {{ n }} different inputs for `{{ function }}` that exercise different behaviour. Write \
each input as the arguments of the call in Python syntax, with literal values only (numbers, \
strings, lists, dicts, tuples, booleans, None), e.g. "[3, 1, 2], 2" for {{ function }}([3, 1, \
2], 2). Reply with only a JSON object: {"inputs": ["...", "..."]}"""


def _python(reply: str) -> str:
    """The Python code of a reply; it must parse."""
    code = fenced_code(reply_text(reply), "python")
    try:
        ast.parse(code)
    except SyntaxError as e:
        raise ValueError(f"the code does not parse: line {e.lineno}: {e.msg}") from None
    return code


def _top_level_names(code: str) -> set[str]:
    tree = ast.parse(code)
    return {
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def without_definitions(code: str, names: set[str]) -> str:
    """``code`` without its top-level functions and classes named in ``names`` (decorators
    included), the rest of its text untouched."""
    tree = ast.parse(code)
    drop: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and (
            node.name in names
        ):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            drop.update(range(first, (node.end_lineno or node.lineno) + 1))
    if not drop:
        return code
    lines = code.splitlines()
    return "\n".join(line for k, line in enumerate(lines, 1) if k not in drop).strip("\n")


class CodeInstructionSynthesizer(FanOutGenerator):
    """Writes ``n`` new programming tasks from each seed task (self-instruct for code).

    Each seed row becomes ``n`` rows (same ``_id``) with one task in ``instruction``: a
    self-contained Python function over the standard library whose result unit tests can
    check. Follow with :class:`InstructionToCode`.
    """

    domain = "code"
    inputs = (Column("seed", "string", "an example programming task"),)
    outputs = (Column("instruction", "string", "one new programming task"),)
    template = PromptTemplate(SELF_INSTRUCT_PROMPT, CODER_SYSTEM)

    class Params(FanOutGenerator.Params):
        prompt: str | None = Field(None, description="Jinja2 template replacing the default")

    def parse(self, row: dict[str, Any], response: Any) -> list[dict[str, Any]]:
        return [{"instruction": g["generated"]} for g in super().parse(row, response)]


class CodeToInstruction(LLMOperator):
    """Writes the programming task that a piece of code solves (``instruction``), as a user
    would ask it: the first half of turning existing code into instruction/solution pairs."""

    domain = "code"
    inputs = (Column("code", "string", "the code"),)
    outputs = (Column("instruction", "string", "the task the code solves"),)
    template = PromptTemplate(CODE_TO_INSTRUCTION_PROMPT, CODER_SYSTEM)
    max_tokens = 512

    class Params(LLMParams):
        language: str = Field("python", description="language tag shown on the code fence")

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"instruction": reply_text(response.text)}


class InstructionToCode(LLMOperator):
    """Writes a Python solution for each instruction (``solution``). The code is taken from
    the reply's fenced block and must parse; otherwise the row is a failure record."""

    domain = "code"
    inputs = (Column("instruction", "string", "the programming task"),)
    outputs = (Column("solution", "string", "Python code solving it"),)
    template = PromptTemplate(INSTRUCTION_TO_CODE_PROMPT, CODER_SYSTEM)
    Params = LLMParams

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return {"solution": _python(response.text)}


class UnitTestGenerator(LLMOperator):
    """Writes unit tests for a solution of a task (``tests``): pytest functions with plain
    asserts, or doctest examples. The tests must parse and contain at least one test. Small
    models often paste the solution above their tests although told not to: such a copy of
    the solution's functions is cut out, so that the tests run against the solution itself
    and not against their own copy. Run them with
    :class:`~prepflow.operators.code.execution.ExecutionEvaluator`."""

    domain = "code"
    inputs = (
        Column("instruction", "string", "the task (expected values come from it)"),
        Column("solution", "string", "the code under test"),
    )
    outputs = (Column("tests", "string", "the tests"),)
    template = PromptTemplate(PYTEST_PROMPT, CODER_SYSTEM)

    class Params(LLMParams):
        style: Literal["pytest", "doctest"] = Field("pytest", description="test style")
        n_tests: int = Field(4, ge=1, le=20, description="tests to ask for")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params.style == "doctest" and self.params.prompt is None:
            self.prompt_template = PromptTemplate(DOCTEST_PROMPT, CODER_SYSTEM).override(
                None, self.params.system_prompt
            )

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        if self.params.style == "doctest":
            text = fenced_code(reply_text(response.text), None)
            if ">>>" not in text:
                raise ValueError("no doctest example (>>>) in the reply")
            return {"tests": text}
        tests = _python(response.text)
        tree = ast.parse(tests)
        if not any(isinstance(n, ast.FunctionDef) and n.name.startswith("test") for n in tree.body):
            raise ValueError("no test function (def test_...) in the reply")
        solution = row.get(self.col("solution")) or ""
        with contextlib.suppress(SyntaxError):  # an unparsable solution fails when it runs
            tests = without_definitions(tests, _top_level_names(solution))
        if not any(
            isinstance(n, ast.FunctionDef) and n.name.startswith("test")
            for n in ast.parse(tests).body
        ):
            raise ValueError("no test function left once the solution's copy was removed")
        return {"tests": tests}


class CodeEnhancer(LLMOperator):
    """Rewrites code with docstrings, type hints or both (``add``), in place.

    The result must parse and define the same top-level functions and classes; otherwise the
    row is a failure record naming what changed. Run the tests again afterwards: an enhanced
    solution is kept only if it still passes.
    """

    domain = "code"
    kind = Kind.REFINE
    inputs = (Column("code", "string", "Python code to enhance"),)
    outputs = (Column("code", "string", "the enhanced code"),)
    template = PromptTemplate(ENHANCE_PROMPT, CODER_SYSTEM)
    template_variables = ("what",)

    class Params(LLMParams):
        add: Literal["docstrings", "type_hints", "both"] = Field("both", description="what to add")

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**super().context(row), "what": ENHANCEMENTS[self.params.add]}

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        code = _python(response.text)
        before = _top_level_names(row[self.col("code")])
        after = _top_level_names(code)
        if before != after:
            lost, new = sorted(before - after), sorted(after - before)
            raise ValueError(f"the enhanced code changed the definitions: lost {lost}, new {new}")
        return {"code": code}


class CodeQualityJudge(JudgeEvaluator):
    """Scores code with an LLM judge (correctness, readability, efficiency, robustness) and a
    rationale; the task is shown too when an ``instruction`` column is bound. A reply that
    does not fit the schema is re-asked, then a failure record: never a default score."""

    domain = "code"
    inputs = (
        Column("code", "string", "the code to judge"),
        Column("instruction", "string", "the task it solves", optional=True),
    )
    template = PromptTemplate(JUDGE_PROMPT, JUDGE_SYSTEM)
    template_variables = ("task_section",)

    class Params(JudgeParams):
        criteria: str = Field(
            "correctness, readability, efficiency and robustness",
            description="what to judge, in words",
        )

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        task = row.get(self.col("instruction"))
        section = f" written for this task:\n\n{task}\n" if task else ""
        return {**super().context(row), "task_section": section}


class CruxEvalGenerator(LLMOperator):
    """CRUXEval-style items from a function: the model proposes inputs, the sandbox computes
    the outputs.

    For each row the model proposes ``n`` argument lists for ``function`` (default: the
    code's only or first top-level function); the code then runs in the sandbox on each, and
    every call that returns a literal value, the same on a second call, becomes one row with
    ``input`` (the arguments) and ``output`` (``repr`` of the result): output-prediction and
    input-prediction items whose answers are true by construction. Calls that raise, time out
    or return non-literals are left out; a row with none left is a failure record.
    """

    domain = "code"
    requires = Requirements(llm=True, sandbox=True)
    inputs = (
        Column("code", "string", "Python code defining the function"),
        Column("function", "string", "the function to call", optional=True),
    )
    outputs = (
        Column("input", "string", "the call's arguments, as Python source"),
        Column("output", "string", "repr of what the call returned"),
    )
    template = PromptTemplate(CRUX_PROMPT, CODER_SYSTEM)
    template_variables = ("function",)
    max_tokens = 512

    class Params(LLMParams):
        n: int = Field(4, ge=1, le=20, description="inputs to propose per function")
        time_limit_s: float = Field(5.0, gt=0, description="sandbox seconds for all the calls")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.schema = create_model(
            "Inputs",
            inputs=(list[str], Field(min_length=1, max_length=self.params.n * 2)),
        )

    def setup(self, ctx: Any) -> None:
        super().setup(ctx)
        self._sandbox = ctx.sandbox

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**super().context(row), "function": self._function(row)}

    def _function(self, row: dict[str, Any]) -> str:
        given = row.get(self.col("function"))
        if given:
            return given
        tree = ast.parse(row[self.col("code")])
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        if not names:
            raise ValueError("the code defines no top-level function")
        return names[0]

    async def arun_row(self, row: dict[str, Any]) -> Any:
        response = await self.chat(self.prompt(row))
        try:
            proposed: BaseModel = response.parsed
            calls = [a.strip() for a in proposed.inputs if a.strip()][: self.params.n]
        except Exception as e:
            self._serving.forget(response)
            raise RowFailed(
                "ParseError", str(e), attempts=response.attempts, raw=response.text
            ) from e
        items = await asyncio.to_thread(self._outputs, row, calls)
        if not items:
            raise RowFailed(
                "NoItems",
                f"none of the {len(calls)} proposed inputs ran to a literal output",
                attempts=response.attempts,
                raw=response.text,
            )
        return self.check_output(items)

    def _outputs(self, row: dict[str, Any], calls: list[str]) -> list[dict[str, str]]:
        nonce = secrets.token_hex(16)
        program = _CRUX_RUNNER.format(nonce=nonce)
        stdin = json.dumps({"function": self._function(row), "calls": calls})
        t = self.params.time_limit_s
        result = self._sandbox.run_python(
            program,
            stdin=stdin,
            files={"solution.py": row[self.col("code")]},
            limits=Limits(wall_s=t, cpu_s=t),
        )
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith(nonce)), None)
        if line is None:
            return []
        outputs = json.loads(line[len(nonce) + 1 :])
        return [
            {"input": call, "output": out}
            for call, out in zip(calls, outputs, strict=True)
            if out is not None
        ]


#: Runs the proposed calls twice each; prints the nonce and, per call, the output's repr when
#: it is a literal and the same both times (else null).
_CRUX_RUNNER = """\
import ast, json, sys
ask = json.load(sys.stdin)
import solution
fn = getattr(solution, ask["function"])
outs = []
for call in ask["calls"]:
    try:
        args = ast.literal_eval("(" + call + ",)") if call.strip() else ()
        first = repr(fn(*ast.literal_eval(repr(args))))
        second = repr(fn(*ast.literal_eval(repr(args))))
        ast.literal_eval(first)
        outs.append(first if first == second else None)
    except Exception:
        outs.append(None)
print("{nonce} " + json.dumps(outs))
"""
