"""Solutions and tests executed in the real sandbox: counts, failures by name, the filters."""

from __future__ import annotations

import inspect
import shutil
import textwrap as textwrap_module
from types import SimpleNamespace

import pyarrow as pa
import pytest

from prepflow.operators.code.execution import (
    ExecutionEvaluator,
    TestResultFilter,
    TrivialSolutionFilter,
)
from prepflow.sandbox import open_sandbox

DEDENT = inspect.getsource(textwrap_module.dedent)
DEDENT_TESTS = """\
import re
_whitespace_only_re = re.compile('^[ \\t]+$', re.MULTILINE)
_leading_whitespace_re = re.compile('(^[ \\t]*)(?:[^ \\t\\n])', re.MULTILINE)

def test_common_indent():
    assert dedent("  a\\n  b\\n") == "a\\nb\\n"

def test_mixed_indent():
    assert dedent("    a\\n  b\\n") == "  a\\nb\\n"

def test_blank_lines_are_normalized():
    assert dedent("  a\\n \\n  b") == "a\\n\\nb"

def test_nothing_to_do():
    assert dedent("a\\nb") == "a\\nb"
"""


@pytest.fixture(scope="module")
def ctx():
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (scripts/setup.sh installs it)")
    with open_sandbox(strict=True, workers=2) as sb:
        yield SimpleNamespace(sandbox=sb)


def evaluate(ctx, rows, time_limit_s=3.0):
    op = ExecutionEvaluator(time_limit_s=time_limit_s).bind({})
    op.setup(ctx)
    batch = pa.table(
        {"_id": list(range(len(rows))), **{k: [r.get(k) for r in rows] for k in rows[0]}}
    )
    return op.run_batch(batch).kept


def test_a_real_stdlib_function_passes_and_a_broken_copy_fails_by_name(ctx):
    # the tests need the module-level regexes dedent uses: the solution brings them
    solution = "import re\n_whitespace_only_re = re.compile('^[ \\t]+$', re.MULTILINE)\n"
    solution += "_leading_whitespace_re = re.compile('(^[ \\t]*)(?:[^ \\t\\n])', re.MULTILINE)\n\n"
    good = solution + DEDENT
    broken = good.replace("r'(?m)^' + margin,", "r'(?m)^' + margin[1:],", 1)  # one space left
    assert broken != good
    out = evaluate(
        ctx,
        [{"solution": good, "tests": DEDENT_TESTS}, {"solution": broken, "tests": DEDENT_TESTS}],
    )
    rows = out.to_pylist()
    assert (rows[0]["tests_run"], rows[0]["tests_passed"], rows[0]["exec_status"]) == (4, 4, "ok")
    assert rows[1]["tests_run"] == 4 and rows[1]["tests_passed"] < 4
    assert any(f.startswith("test_common_indent: ") for f in rows[1]["test_failures"])
    r = TestResultFilter().bind({}).run_batch(out)
    assert r.kept.column("_id").to_pylist() == [0]
    assert r.dropped.column("_reason").to_pylist()[0].startswith("tests: ")
    assert "test_common_indent" in r.dropped.column("_reason").to_pylist()[0]


def test_every_test_style_and_every_way_to_fail(ctx):
    add = "def add(a, b):\n    return a + b\n"
    rows = [
        {
            "solution": add,
            "tests": "import pytest\n@pytest.mark.parametrize('a,b,c', [(1, 1, 2), (2, 2, 5)])\ndef test_p(a, b, c):\n    assert add(a, b) == c\n\ndef test_raises():\n    with pytest.raises(TypeError):\n        add(1, 'x')\n",
        },
        {
            "solution": add,
            "tests": "import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n        self.assertEqual(add(2, 2), 4)\n",
        },
        {"solution": add, "tests": ">>> add(1, 2)\n3\n>>> add(2, 2)\n5\n"},
        {
            "solution": add,
            "tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
            "entry_point": "add",
        },
        {"solution": add, "tests": "def test_hang():\n    while True:\n        pass\n"},
        {
            "solution": add,
            "tests": "import os\ndef test_quit():\n    print('fake report')\n    os._exit(0)\n",
        },
        {"solution": "def add(a, b:\n", "tests": "def test_x():\n    assert add(1, 1) == 2\n"},
        {"solution": add, "tests": "def test_boom():\n    raise KeyError('k')\n"},
        # pytest used without being imported, as models write it
        {
            "solution": add,
            "tests": "def test_r():\n    with pytest.raises(TypeError):\n        add(1, 'x')\n",
        },
    ]
    for r in rows:
        r.setdefault("entry_point", None)
    out = evaluate(ctx, rows, time_limit_s=1.0).to_pylist()
    summary = [(r["tests_run"], r["tests_passed"], r["exec_status"]) for r in out]
    assert summary == [
        (3, 2, "ok"), (1, 1, "ok"), (2, 1, "ok"), (1, 1, "ok"),
        (0, 0, "timeout"), (0, 0, "no-report"), (0, 0, "error"), (1, 0, "ok"), (1, 1, "ok"),
    ]  # fmt: skip
    assert out[0]["test_failures"] == ["test_p[1]: assert add(a, b) == c"]
    assert out[2]["test_failures"][0].startswith("doctest 2: add(2, 2): ")
    assert out[6]["test_failures"] == [
        "solution: SyntaxError: '(' was never closed (solution.py, line 1)"
    ]
    assert out[7]["test_failures"] == ["test_boom: KeyError: 'k'"] and out[7]["tests_errored"] == 1
    reasons = TestResultFilter().bind({}).run_batch(pa.Table.from_pylist(
        [{"_id": i, **r} for i, r in enumerate(out)]
    )).dropped.column("_reason").to_pylist()  # fmt: skip
    assert reasons[2:] == [
        "exec_status: timeout: timeout: the program ended without a report",
        "exec_status: no-report: no-report: the program ended without a report",
        "exec_status: error: solution: SyntaxError: '(' was never closed (solution.py, line 1)",
        "tests: 1 of 1 failed: test_boom: KeyError: 'k'",
    ]


def test_trivial_solutions_are_dropped_with_the_rule():
    add = "def add(a, b):\n    return a + b\n"
    good = "def test_add():\n    assert add(1, 2) == 3\n"
    rows = [
        (add, good),
        ("def add(a, b):\n    return 3\n", good),
        (add + "assert add(1, 2) == 3\n", good),
        (add, "def test_x():\n    print(add(1, 2))\n"),
        (add, "def test_x():\n    assert max(1, 2) == 2\n"),
        (add, "def add(a, b):\n    return 3\n\ndef test_add():\n    assert add(1, 2) == 3\n"),
        (add, ">>> add(1, 2)\n3\n"),
        ("def add(:", good),
    ]
    batch = pa.table(
        {
            "_id": list(range(len(rows))),
            "solution": [r[0] for r in rows],
            "tests": [r[1] for r in rows],
        }
    )
    r = TrivialSolutionFilter().bind({}).run_batch(batch)
    assert r.kept.column("_id").to_pylist() == [0, 6]
    assert r.dropped.column("_reason").to_pylist() == [
        "trivial: every function only returns a constant or does nothing (add)",
        "trivial: the solution contains 1 of the tests' asserts",
        "trivial: the tests assert nothing",
        "trivial: the tests use none of the solution's names (add)",
        "trivial: the tests redefine the solution's add",
        "solution does not parse: line 1: invalid syntax",
    ]
