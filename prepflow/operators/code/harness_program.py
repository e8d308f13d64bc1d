"""Runs a solution's tests inside the sandbox and reports each test (a program: stdlib only).

Read by :class:`~prepflow.operators.code.execution.ExecutionEvaluator` and run as the sandboxed
program's ``main.py``, beside ``solution.py`` and ``tests.py``. It reads a nonce from stdin
before importing anything of the solution, then runs, in order of definition: ``test_*``
functions (pytest style: plain asserts; ``import pytest`` gets a small built-in subset,
``raises``, ``approx``, ``mark.parametrize`` and ``fail``, the same on every machine; fixtures
are not supported), ``unittest.TestCase`` classes, and, when the tests text is ``>>>``
examples without test functions, those examples as doctests. With an entry point and a
``check(candidate)`` function (HumanEval style), ``check`` is one test. Modules load only
when used: a plain test run costs one interpreter fork and the solution's imports. The last line of
stdout is ``<nonce> <json report>``; a program that exits early or prints its own line cannot
produce a report with the nonce it never saw.
"""

import contextlib
import json
import os
import sys
import traceback
import types

MAX_MESSAGE = 300


def _pytest_shim():
    """A minimal ``pytest`` for generated tests when the real one is not installed."""
    mod = types.ModuleType("pytest")

    @contextlib.contextmanager
    def raises(expected, match=None):
        info = types.SimpleNamespace(value=None, type=None)
        try:
            yield info
        except expected as e:
            info.value, info.type = e, type(e)
            if match is not None:
                import re

                assert re.search(match, str(e)), f"{match!r} does not match {str(e)!r}"
        else:
            raise AssertionError(f"DID NOT RAISE {expected}")

    class approx:
        def __init__(self, expected, rel=1e-6, abs=1e-12):
            self.expected, self.rel, self.abs = expected, rel, abs

        def __eq__(self, other):
            if isinstance(self.expected, list | tuple):
                return len(other) == len(self.expected) and all(
                    approx(e, self.rel, self.abs) == o
                    for e, o in zip(self.expected, other, strict=True)
                )
            return abs(other - self.expected) <= max(self.rel * abs(self.expected), self.abs)

        def __repr__(self):
            return f"approx({self.expected!r})"

    def parametrize(names, values):
        def mark(fn):
            fn.__dict__.setdefault("_parametrize", []).append((names, values))
            return fn

        return mark

    mod.raises, mod.approx = raises, approx
    mod.mark = types.SimpleNamespace(parametrize=parametrize)
    mod.fail = lambda msg="": (_ for _ in ()).throw(AssertionError(msg))
    return mod


def _message(exc):
    """``Type: message`` and, for an assert, the failing line."""
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if isinstance(exc, AssertionError):
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith("tests.py")
        ]
        if frames and frames[-1].line:
            text = f"{text} ({frames[-1].line.strip()})" if str(exc) else frames[-1].line.strip()
    return text[:MAX_MESSAGE]


def _run(name, fn, results):
    try:
        fn()
        results.append({"name": name, "outcome": "passed"})
    except AssertionError as e:
        results.append({"name": name, "outcome": "failed", "message": _message(e)})
    except Exception as e:
        results.append({"name": name, "outcome": "error", "message": _message(e)})


def _expand(name, fn):
    """(test name, no-argument callable) for a test function, parametrized ones expanded."""
    cases = [((), {})]
    for names, values in reversed(fn.__dict__.get("_parametrize", [])):
        keys = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        new = []
        for args, kwargs in cases:
            for v in values:
                v = v if len(keys) > 1 else (v,)
                new.append((args, {**kwargs, **dict(zip(keys, v, strict=True))}))
        cases = new
    if len(cases) == 1:
        return [(name, fn)]
    return [(f"{name}[{i}]", lambda kw=kw: fn(**kw)) for i, (_, kw) in enumerate(cases)]


def run_tests(tests_source, entry_point):
    solution = sys.modules["solution"]
    if ">>>" in tests_source and not any(
        line.startswith(("def test", "class ", "def check")) for line in tests_source.splitlines()
    ):
        return _doctests(tests_source, vars(solution))
    results = []
    module = types.ModuleType("tests")
    module.__file__ = os.path.abspath("tests.py")
    module.__dict__.update({k: v for k, v in vars(solution).items() if not k.startswith("__")})
    module.pytest = sys.modules["pytest"]  # tests often use pytest.raises without importing it
    sys.modules["tests"] = module
    exec(compile(tests_source, module.__file__, "exec"), module.__dict__)
    for name, obj in list(vars(module).items()):
        if name.startswith("test") and callable(obj) and isinstance(obj, types.FunctionType):
            for case, fn in _expand(name, obj):
                _run(case, fn, results)
        elif _is_test_case(obj):
            import unittest

            suite = unittest.defaultTestLoader.loadTestsFromTestCase(obj)
            for test in suite:
                outcome = unittest.TestResult()
                test.run(outcome)
                case = f"{name}.{test._testMethodName}"
                bad = outcome.failures or outcome.errors
                if not bad:
                    results.append({"name": case, "outcome": "passed"})
                else:
                    kind = "failed" if outcome.failures else "error"
                    last = bad[0][1].strip().splitlines()[-1]
                    results.append({"name": case, "outcome": kind, "message": last[:MAX_MESSAGE]})
    if entry_point and callable(module.__dict__.get("check")):
        candidate = getattr(solution, entry_point, None)
        if candidate is None:
            results.append({"name": "check", "outcome": "error",
                            "message": f"the solution defines no {entry_point!r}"})  # fmt: skip
        else:
            _run("check", lambda: module.check(candidate), results)
    return results


def _is_test_case(obj):
    unittest = sys.modules.get("unittest")  # loaded by tests that define TestCase classes
    return (
        unittest is not None
        and isinstance(obj, type)
        and issubclass(obj, unittest.TestCase)
        and obj is not unittest.TestCase
    )


def _doctests(source, globs):
    import doctest
    import io

    parser, results = doctest.DocTestParser(), []
    test = parser.get_doctest(source, dict(globs), "tests", "tests.py", 0)
    for k, example in enumerate(test.examples, 1):
        one = doctest.DocTest([example], test.globs, f"example {k}", "tests.py", example.lineno, "")
        out = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(one, out=out.write, clear_globs=False)
        name = f"doctest {k}: {example.source.strip()}"[:80]
        if runner.failures:
            got = out.getvalue().strip().splitlines()
            results.append(
                {"name": name, "outcome": "failed", "message": " | ".join(got[-4:])[:MAX_MESSAGE]}
            )
        else:
            results.append({"name": name, "outcome": "passed"})
    return results


def main():
    nonce = sys.stdin.readline().strip()
    entry_point = sys.stdin.readline().strip() or None
    with open("tests.py", encoding="utf-8") as f:
        tests_source = f.read()
    sys.modules["pytest"] = _pytest_shim()
    report = {"results": [], "error": None}
    sys.path.insert(0, os.getcwd())
    try:
        import solution  # noqa: F401
    except BaseException as e:
        report["error"] = "solution: " + _message(e)
    else:
        try:
            report["results"] = run_tests(tests_source, entry_point)
        except BaseException as e:
            report["error"] = "tests: " + _message(e)
    sys.stdout.flush()
    print(f"\n{nonce} {json.dumps(report)}", flush=True)


if __name__ == "__main__":
    main()
