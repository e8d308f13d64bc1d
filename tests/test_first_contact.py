"""What a newcomer meets first, through the real entry point: compile finds every problem at once,
the registry browses clearly, init says what to do next."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prepflow.data import shardfile
from prepflow.testing import ScriptedServer
from tests.helpers import prepflow

PLANTED = """\
name: planted
imports: ["needs_pkg.py"]
serving: {{backend: openai, base_url: "{url}", model: absent-model}}
steps:
  - {{op: WordCountFiltr}}                                 # 1: unknown operator (typo)
  - {{op: WordCountFilter, params: {{min_word: 3}}}}       # 2: unknown parameter (typo)
  - {{op: CharCountFilter, params: {{min_chars: ten}}}}    # 3: wrong type
  - {{op: LanguageFilter}}                                 # 4: needs lang, lang_score: missing
  - {{op: NeedsPackage}}                                   # 5: an optional package is missing
  - {{op: PromptedEvaluator, inputs: {{text: body}}}}      # 6: column body is missing; LLM step
"""
NEEDS_PKG = '''
from prepflow.core import Column, FilterOperator, Requirements


class NeedsPackage(FilterOperator):
    """Needs a package nobody has."""

    inputs = (Column("text", "string"),)
    requires = Requirements(packages=("no_such_package_xyz",), extra="nope")

    def keep(self, batch):
        raise NotImplementedError
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compile_reports_every_planted_problem_at_once(tmp_path: Path):
    (tmp_path / "in.jsonl").write_text('{"text": "hello there world"}\n')
    (tmp_path / "needs_pkg.py").write_text(NEEDS_PKG)
    with ScriptedServer() as server:
        (tmp_path / "p.yaml").write_text(PLANTED.format(url=server.url))
        done = prepflow("compile", "p.yaml", "--input", "in.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    err = done.stderr
    assert "pipeline has 8 problem(s)" in err, err
    assert (
        "p.yaml:5" in err
        and "unknown operator 'WordCountFiltr'; did you mean WordCountFilter" in err
    )
    assert "unknown parameter 'min_word'; did you mean 'min_words'" in err
    assert "parameter 'min_chars': Input should be a valid integer" in err and "expected int" in err
    assert "input column 'lang' not found" in err and "input column 'lang_score' not found" in err
    assert "(unless step 1 'wordcountfiltr' or " in err  # the steps whose outputs are a guess
    assert "needs package(s) no_such_package_xyz: pip install 'prepflow[nope]'" in err
    assert "input column 'body' not found" in err
    assert "serving.model 'absent-model' is not served by" in err and "test-model" in err


def test_compile_reports_an_unreachable_server_and_a_missing_backend_package(tmp_path: Path):
    (tmp_path / "in.jsonl").write_text('{"text": "hello"}\n')
    url = f"http://127.0.0.1:{free_port()}/v1"
    (tmp_path / "p.yaml").write_text(
        f'serving: {{backend: openai, base_url: "{url}", model: m}}\n'
        "steps:\n  - {op: PromptedEvaluator}\n"
    )
    done = prepflow("compile", "p.yaml", "--input", "in.jsonl", cwd=tmp_path)
    assert (
        done.returncode == 2 and f"serving.base_url {url}: cannot reach the server" in done.stderr
    )
    (tmp_path / "q.yaml").write_text(
        "serving: {backend: vllm, model: m}\nsteps:\n  - {op: PromptedEvaluator}\n"
    )
    done = prepflow("compile", "q.yaml", "--input", "in.jsonl", cwd=tmp_path)
    assert (
        "serving.backend vllm: needs the vllm package: pip install 'prepflow[vllm]'" in done.stderr
    )


def test_ops_list_shows_columns_and_refuses_an_unknown_domain(tmp_path: Path):
    done = prepflow("ops", "list", "--domain", "text", cwd=tmp_path)
    assert done.returncode == 0
    assert "reads" in done.stdout and "writes" in done.stdout and "MinHashDedup" in done.stdout
    bad = prepflow("ops", "list", "--domain", "txet", cwd=tmp_path)
    assert (
        bad.returncode == 2 and "no domain 'txet'; domains: " in bad.stderr and "text" in bad.stderr
    )


@pytest.mark.parametrize("name", ["MinHashDedup", "QualityJudge", "GopherQualityFilter"])
def test_ops_show_renders_parameters_as_a_table_without_docstring_markup(tmp_path: Path, name):
    done = prepflow("ops", "show", name, cwd=tmp_path)
    assert done.returncode == 0
    assert "parameter" in done.stdout and "default" in done.stdout and "description" in done.stdout
    assert ":class:" not in done.stdout and "``" not in done.stdout


def test_init_ends_with_the_next_commands_to_try(tmp_path: Path):
    done = prepflow("init", "proj", cwd=tmp_path)
    assert done.returncode == 0
    tail = done.stdout.split("next:")[1]
    assert "pytest" in tail and "prepflow compile pipeline.yaml" in tail and "prepflow run" in tail


def test_without_a_terminal_progress_is_plain_lines_naming_the_step(tmp_path: Path):
    testops = Path(__file__).parent / "engine" / "testops.py"
    (tmp_path / "p.yaml").write_text(
        f'name: slow\nimports: ["{testops}"]\nsteps:\n'
        "  - {op: TLength, params: {sleep_s: 0.1}}\n"
    )
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "row {i}"}}\n' for i in range(2000)))
    done = subprocess.run(
        [sys.executable, "-m", "prepflow.cli", "run", "p.yaml", "--input", "in.jsonl",
         "--output", "o.jsonl", "--shard-rows", "100", "--workers", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "PREPFLOW_PROGRESS_INTERVAL": "0.5"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("prepflow [")]
    assert len(lines) >= 2, done.stderr
    assert all("1. tlength: " in line and "/2,000 rows" in line for line in lines)
    assert any("rows/s" in line and "ETA" in line for line in lines)


def test_llm_progress_counts_requests_in_flight_and_cache_hits(tmp_path: Path):
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "row {i}"}}\n' for i in range(40)))
    (tmp_path / "p.yaml").write_text(
        "name: llm\nsteps:\n"
        "  - {op: PromptedGenerator, params: {prompt: 'say {{ text }}'}, outputs: {generated: o}}\n"
    )
    with ScriptedServer(latency=0.15) as server:
        done = subprocess.run(
            [sys.executable, "-m", "prepflow.cli", "run", "p.yaml", "--input", "in.jsonl",
             "--output", "o.jsonl", "--base-url", server.url, "--model", "test-model",
             "--set", "serving.concurrency=4"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**__import__("os").environ, "PREPFLOW_PROGRESS_INTERVAL": "0.2"},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    llm = [line for line in done.stderr.splitlines() if "LLM: " in line]
    assert llm, done.stderr
    assert "requests" in llm[-1] and "4 in flight" in "".join(llm) and "tokens/s" in llm[-1]
    assert "cache hits" in llm[-1]
    assert any(
        "1. promptedgenerator: " in line and "/40 rows" in line for line in done.stderr.splitlines()
    )


RATIONALE = r"step \frac{a}{b} uses \theta and \times; file C:\new\table.txt; pattern ^\d+\s*$"


def test_latex_windows_paths_and_regex_survive_into_reasons_and_the_report(tmp_path: Path):
    """A judge writes LaTeX unescaped inside its JSON (``\\frac`` would read as a form feed),
    paths and regexes escaped: every backslash must reach the dropped row, report.json and
    report.md as written."""
    reply = (
        '{"rationale": "step \\frac{a}{b} uses \\theta and \\times; file C:\\\\new\\\\table.txt; '
        'pattern ^\\\\d+\\\\s*$", "score": 1}'
    )
    (tmp_path / "in.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (tmp_path / "p.yaml").write_text(
        "name: latex\nsteps:\n  - {op: PromptedFilter, params: {threshold: 3}}\n"
    )
    with ScriptedServer(lambda request: reply) as server:
        done = prepflow("run", "p.yaml", "--input", "in.jsonl", "--output", "o.jsonl",
                        "--base-url", server.url, "--model", "test-model", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "latex"
    dropped = shardfile.read(next((run / "dropped").rglob("*.arrow")))
    assert dropped["_reason"].to_pylist() == [f"threshold: score=1 < 3; {RATIONALE}"] * 2
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert any(RATIONALE in text for text in _strings(report))
    assert RATIONALE in (run / "report.md").read_text(encoding="utf-8")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
