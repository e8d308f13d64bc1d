"""Code judged by running it: solution + tests executed in the sandbox, the filter that keeps
only code whose tests ran and passed, and the check that a solution is not trivially its
tests."""

from __future__ import annotations

import ast
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.context import ExecResult, Limits
from prepflow.core.errors import ConfigError
from prepflow.core.operator import EvaluateOperator, FilterOperator, Params, Requirements

HARNESS = Path(__file__).with_name("harness_program.py")
MAX_REASON_CHARS = 400


class ExecutionEvaluator(EvaluateOperator):
    """Runs each solution's tests in the sandbox and records what happened, test by test.

    The solution is ``solution.py`` and the tests ``tests.py`` in the program's scratch
    directory; the tests see the solution's names (``from solution import *`` is implied).
    Tests are ``test_*`` functions with plain asserts (``pytest.raises``, ``approx`` and
    ``mark.parametrize`` work without pytest), ``unittest.TestCase`` classes, ``>>>`` doctest
    examples, or, with an ``entry_point`` column, a HumanEval ``check(candidate)``. Writes the
    counts (``tests_run``, ``tests_passed``, ``tests_failed`` for failed asserts,
    ``tests_errored`` for other exceptions), ``exec_status`` (the sandbox's status, or
    ``no-report`` when the program ended without the harness's report), ``exec_seconds`` and
    ``test_failures`` (``name: error`` of each test that did not pass, or why none ran).
    Follow with :class:`TestResultFilter`.
    """

    domain = "code"
    requires = Requirements(sandbox=True)
    inputs = (
        Column("solution", "string", "the code under test (a Python module)"),
        Column("tests", "string", "its tests (test functions, TestCase classes or doctests)"),
        Column("entry_point", "string", "function passed to a check(candidate)", optional=True),
    )
    outputs = (
        Column("tests_run", "int", "tests that ran"),
        Column("tests_passed", "int", "tests that passed"),
        Column("tests_failed", "int", "tests whose assertion failed"),
        Column("tests_errored", "int", "tests that raised another exception"),
        Column("exec_status", "string", "sandbox status: ok, error, timeout, memory, ..."),
        Column("exec_seconds", "float", "wall-clock seconds of the run"),
        Column("test_failures", "list<string>", "name: error of every test that did not pass"),
    )

    class Params(Params):
        time_limit_s: float = Field(10.0, gt=0, description="wall-clock and CPU seconds per row")
        memory_mb: int = Field(512, ge=32, description="memory limit per row, in MiB")

    def setup(self, ctx: Any) -> None:
        self._sandbox = ctx.sandbox
        self._harness = HARNESS.read_text(encoding="utf-8")

    def process(self, batch: pa.Table) -> pa.Table:
        sandbox = getattr(self, "_sandbox", None)
        if sandbox is None:
            raise ConfigError(f"{self.name}: setup(ctx) must run first (it needs ctx.sandbox)")
        rows = self._rows(batch)
        workers = max(1, int(getattr(sandbox, "workers", 1)))
        with ThreadPoolExecutor(workers) as pool:
            reports = list(pool.map(lambda r: self.run_row(*r), rows))
        for c in self.outputs:
            values = pa.array([r[c.name] for r in reports], _ARROW[c.type])
            name = self.col(c.name)
            if name in batch.column_names:
                batch = batch.set_column(batch.column_names.index(name), name, values)
            else:
                batch = batch.append_column(name, values)
        return batch

    def _rows(self, batch: pa.Table) -> list[tuple[str | None, str | None, str | None]]:
        sol = batch.column(self.col("solution")).to_pylist()
        tests = batch.column(self.col("tests")).to_pylist()
        name = self.col("entry_point")
        entry = batch.column(name).to_pylist() if name in batch.column_names else [None] * len(sol)
        return list(zip(sol, tests, entry, strict=True))

    def run_row(self, solution: str | None, tests: str | None, entry: str | None) -> dict:
        """One row's report (the sandbox runs the harness over ``solution`` and ``tests``)."""
        if solution is None or tests is None:
            return _report("null-input", 0.0, [], "solution or tests is null")
        p = self.params
        nonce = secrets.token_hex(16)
        result = self._sandbox.run_python(
            self._harness,
            stdin=f"{nonce}\n{entry or ''}\n",
            files={"solution.py": solution, "tests.py": tests},
            limits=Limits(wall_s=p.time_limit_s, cpu_s=p.time_limit_s, memory_mb=p.memory_mb),
        )
        return _judge(result, nonce)


_ARROW = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "list<string>": pa.list_(pa.string()),
}


def _judge(result: ExecResult, nonce: str) -> dict:
    """The report from the harness's nonce line, or why there is none."""
    line = next(
        (ln for ln in reversed(result.stdout.splitlines()) if ln.startswith(nonce + " ")), None
    )
    if line is None:
        tail = (result.stderr.strip().splitlines() or [""])[-1][:200]
        status = str(result.status) if not result.ok else "no-report"
        why = f"{status}: {tail}" if tail else f"{status}: the program ended without a report"
        return _report(status, result.duration_s, [], why)
    report = orjson.loads(line[len(nonce) + 1 :])
    if report["error"]:
        return _report("error", result.duration_s, [], report["error"])
    return _report(str(result.status), result.duration_s, report["results"])


def _report(status: str, seconds: float, results: list[dict], why: str | None = None) -> dict:
    count = {k: sum(1 for r in results if r["outcome"] == k) for k in ("passed", "failed", "error")}
    failures = [f"{r['name']}: {r.get('message', '')}" for r in results if r["outcome"] != "passed"]
    return {
        "tests_run": len(results),
        "tests_passed": count["passed"],
        "tests_failed": count["failed"],
        "tests_errored": count["error"],
        "exec_status": status,
        "exec_seconds": round(seconds, 4),
        "test_failures": failures if why is None else [why, *failures],
    }


class TestResultFilter(FilterOperator):
    """Keeps rows whose tests ran and all passed (from :class:`ExecutionEvaluator`).

    Drops a row when its run did not end normally (``exec_status``), fewer than ``min_tests``
    tests ran, or any test failed; the reason names the failing tests and their errors, e.g.
    ``tests: 1 of 4 failed: test_empty: AssertionError: assert f([]) == 0``.
    """

    __test__ = False  # not a pytest test class
    domain = "code"
    inputs = (
        Column("tests_run", "int", "tests that ran"),
        Column("tests_passed", "int", "tests that passed"),
        Column("exec_status", "string", "sandbox status"),
        Column("test_failures", "list<string>", "name: error of each test that did not pass"),
    )

    class Params(Params):
        min_tests: int = Field(1, ge=1, description="fewest tests that must have run")

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        cols = [batch.column(self.col(c.name)).to_pylist() for c in self.inputs]
        mask, reasons = [], []
        for run, passed, status, failures in zip(*cols, strict=True):
            why = None
            failures = failures or []
            if status not in ("ok", "error") or (run == 0 and failures):
                why = f"exec_status: {status}" + (f": {failures[0]}" if failures else "")
            elif run < self.params.min_tests:
                why = f"min_tests: {run} < {self.params.min_tests} (no test ran)"
            elif passed < run:
                why = f"tests: {run - passed} of {run} failed: " + "; ".join(failures)
            mask.append(why is None)
            reasons.append(why[:MAX_REASON_CHARS] if why else None)
        return pa.array(mask, pa.bool_()), pa.array(reasons, pa.string())


class TrivialSolutionFilter(FilterOperator):
    """Drops solution/tests pairs that would pass without testing anything real.

    Five rules, from the code's syntax trees: the tests assert nothing (no ``assert``, no
    ``assert*`` call, no ``pytest.raises``, no doctest example); the tests redefine a name of
    the solution (they would test their own copy); the tests use none of the names the
    solution defines; the solution contains the tests' own assertions (it is the tests);
    every function of the solution only returns a constant or does nothing. A row whose
    solution or tests do not parse is dropped as such.
    """

    domain = "code"
    inputs = (
        Column("solution", "string", "the code under test"),
        Column("tests", "string", "its tests"),
    )

    class Params(Params):
        min_shared_asserts: int = Field(
            1,
            ge=1,
            description="the solution containing this many of the tests' asserts is trivial",
        )

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        sol = batch.column(self.col("solution")).to_pylist()
        tests = batch.column(self.col("tests")).to_pylist()
        reasons = [self.verdict(s, t) for s, t in zip(sol, tests, strict=True)]
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())

    def verdict(self, solution: str | None, tests: str | None) -> str | None:
        if solution is None or tests is None:
            return "solution or tests is null"
        try:
            sol_tree = ast.parse(solution)
        except SyntaxError as e:
            return f"solution does not parse: line {e.lineno}: {e.msg}"
        if ">>>" in tests and "def test" not in tests:
            doctests = [ln for ln in tests.splitlines() if ln.strip().startswith(">>>")]
            test_tree = ast.parse("\n".join(ln.strip()[3:].strip() for ln in doctests) or "pass")
        else:
            try:
                test_tree = ast.parse(tests)
            except SyntaxError as e:
                return f"tests do not parse: line {e.lineno}: {e.msg}"
            if not _asserts(test_tree) and ">>>" not in tests:
                return "trivial: the tests assert nothing"
        defined = _defined(sol_tree)
        redefined = sorted(defined & _defined(test_tree))
        if redefined:
            return f"trivial: the tests redefine the solution's {', '.join(redefined[:5])}"
        used = {n.id for n in ast.walk(test_tree) if isinstance(n, ast.Name)}
        used |= {n.attr for n in ast.walk(test_tree) if isinstance(n, ast.Attribute)}
        used |= {
            a.name for n in ast.walk(test_tree) if isinstance(n, ast.ImportFrom) for a in n.names
        }
        if defined and not defined & used:
            return f"trivial: the tests use none of the solution's names ({', '.join(sorted(defined)[:5])})"
        shared = _assert_texts(test_tree) & _assert_texts(sol_tree)
        if len(shared) >= self.params.min_shared_asserts:
            return f"trivial: the solution contains {len(shared)} of the tests' asserts"
        functions = [
            n for n in sol_tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        if functions and all(_constant_body(f) for f in functions):
            names = ", ".join(f.name for f in functions[:5])
            return f"trivial: every function only returns a constant or does nothing ({names})"
        return None


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_")}


def _asserts(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name.startswith("assert") or name in ("raises", "fail"):
                return True
    return False


def _assert_texts(tree: ast.AST) -> set[str]:
    return {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Assert)}


def _constant_body(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # docstring
    if not body:
        return True
    if len(body) != 1:
        return False
    stmt = body[0]
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True  # ...
    if isinstance(stmt, ast.Return):
        return stmt.value is None or _is_literal(stmt.value)
    return False


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True
