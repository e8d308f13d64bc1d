"""Every runnable block of README.md and docs/ runs; a block that stops working fails here with
its file and line. The convention (`<!-- runnable -->` before a fence) is in tests/docs/mdscan.py
and docs/contributing.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.mdscan import DOCS, REPO, Block, DocError, documents, runnable_blocks
from tests.docs.runner import BlockFailed, instance, run_block, run_blocks, shell_commands


def _cases() -> list:
    """README.md's blocks before its first slow one run with the fast tests; the rest, and every
    page under docs/ (tutorials that start many processes), run with the slow tests (CI)."""
    cases = []
    for doc in documents():
        blocks = runnable_blocks(doc)
        name = str(doc.relative_to(REPO))
        fast = [] if doc.is_relative_to(DOCS) else blocks
        fast = fast[: next((i for i, b in enumerate(fast) if "slow" in b.flags), len(fast))]
        if fast:
            cases.append(pytest.param(fast, id=name))
        if len(fast) < len(blocks):
            cases.append(pytest.param(blocks, id=f"{name}[all]", marks=pytest.mark.slow))
    return cases


@pytest.mark.parametrize("blocks", _cases())
def test_runnable_blocks_run(blocks: list[Block]) -> None:
    run_blocks(blocks)


def test_readme_examples_are_marked() -> None:
    """The README's Python example and quick CLI examples stay under test."""
    blocks = runnable_blocks(REPO / "README.md")
    code = "\n".join(b.code for b in blocks)
    assert "class MinChars(FilterOperator)" in code and "class Clean(Pipeline)" in code
    assert "prepflow run clean.yaml" in code and "prepflow compile" in code


# ---- the runner itself -----------------------------------------------------------------------


@pytest.fixture
def doc(tmp_path: Path):
    """Writes a Markdown document outside the repository and returns its path."""
    count = iter(range(100))

    def make(text: str) -> Path:
        path = tmp_path / f"doc{next(count)}.md"
        path.write_text(text)
        return path

    return make


def test_a_failing_block_names_its_file_and_line(doc) -> None:
    path = doc(
        "# t\n\n<!-- runnable: file=ops.py -->\n```python\nX = 1\n```\n\n"
        "<!-- runnable -->\n```python\nfrom ops import X\nassert X == 1\nraise SystemExit(X + 1)\n```\n"
    )
    blocks = runnable_blocks(path)
    assert [(b.line, b.file) for b in blocks] == [(5, "ops.py"), (10, None)]
    with pytest.raises(
        BlockFailed, match=rf"^{re.escape(str(path))}:10: python block: exit status 2"
    ):
        run_blocks(blocks)


def test_a_python_traceback_points_into_the_markdown(doc) -> None:
    path = doc("<!-- runnable -->\n```python\nx = 1\n1 / 0\n```\n")
    with pytest.raises(BlockFailed) as e:
        run_blocks(runnable_blocks(path))
    assert f'File "{path}", line 4' in str(e.value) and "ZeroDivisionError" in str(e.value)


def test_shell_commands_run_one_by_one_and_the_failing_one_is_named(doc) -> None:
    path = doc(
        "<!-- runnable -->\n```bash\n# a comment\nprepflow ops show Head \\\n  --json\n\n"
        "prepflow ops show NoSuchOp\n```\n"
    )
    (block,) = runnable_blocks(path)
    assert shell_commands(block.code, block.line) == [
        (4, "prepflow ops show Head \\\n  --json"),
        (7, "prepflow ops show NoSuchOp"),
    ]
    quoted = "python -c 'print(1)\n# not a comment\nprint(2)'\necho done  # a comment\n"
    assert shell_commands(quoted, 1) == [
        (1, "python -c 'print(1)\n# not a comment\nprint(2)'"),
        (4, "echo done  # a comment"),
    ]
    with pytest.raises(BlockFailed, match=r":7: \$ prepflow ops show NoSuchOp: exit status 2"):
        run_blocks([block])


def test_llm_blocks_reach_the_scripted_server(doc) -> None:
    path = doc(
        "<!-- runnable: llm -->\n```python\nimport httpx\n"
        "r = httpx.post('http://127.0.0.1:8000/v1/chat/completions', json={'model': 'm', "
        "'messages': [{'role': 'user', 'content': 'hi'}]})\n"
        "assert 'boxed' in r.json()['choices'][0]['message']['content']\n```\n"
    )
    run_blocks(runnable_blocks(path))


@pytest.mark.parametrize(
    ("text", "line", "error"),
    [
        ("<!-- runnable -->\n\nplain text\n", 3, "must stand right before a fenced block"),
        ("<!-- runnable: fast -->\n```bash\ntrue\n```\n", 3, "unknown runnable option 'fast'"),
        ("<!-- runnable -->\n```yaml\na: 1\n```\n", 3, "or excerpt=PATH for 'yaml'"),
        (
            "<!-- runnable: file=a.yaml -->\n```yaml\na: 1\n```\n",
            5,
            "no python or shell block after it",
        ),
    ],
)
def test_malformed_markers_are_reported_with_their_line(
    doc, text: str, line: int, error: str
) -> None:
    path = doc("# title\n\n" + text)
    with pytest.raises(DocError, match=rf"^{re.escape(str(path))}:{line}: .*{error}"):
        runnable_blocks(path)


def test_markers_inside_code_are_not_runnable(doc) -> None:
    path = doc("````markdown\n<!-- runnable -->\n```bash\nfalse\n```\n````\n")
    assert runnable_blocks(path) == []


def test_stand_in_model_answers_valid_instances() -> None:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "items": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "label": {"$ref": "#/$defs/Label"},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        },
        "$defs": {"Label": {"enum": ["easy", "hard"]}},
    }
    assert instance(schema, schema) == {
        "score": 5,
        "items": ["ok 1", "ok 2", "ok 3"],
        "label": "easy",
        "note": "ok",
    }


def test_run_block_writes_file_blocks(tmp_path: Path, doc) -> None:
    path = doc(
        "<!-- runnable: file=a.yaml -->\n```yaml\na: 1\n```\n\n<!-- runnable -->\n```bash\ncat a.yaml\n```\n"
    )
    run_block(runnable_blocks(path)[0], tmp_path)
    assert (tmp_path / "a.yaml").read_text() == "a: 1\n"


def test_excerpts_must_match_the_quoted_file_in_order(doc) -> None:
    quote = "<!-- runnable: excerpt=examples/quickstart.yaml -->\n```yaml\n{}\n```\n"
    ok = doc(
        quote.format(
            "name: quickstart\nsteps:\n  - op: ExpressionFilter       # rule step: drop empty or overlong instructions (with a reason)"
        )
    )
    run_blocks(runnable_blocks(ok))
    reordered = doc(quote.format("steps:\nname: quickstart"))
    with pytest.raises(
        BlockFailed, match=r":4: not in examples/quickstart.yaml .*: name: quickstart"
    ):
        run_blocks(runnable_blocks(reordered))
