"""Static analysis, language tags, code tokens (with MinHashDedup), fences, ruff, on real code."""

from __future__ import annotations

import io
import re
import tokenize
import warnings
from pathlib import Path

import pyarrow as pa

from prepflow.operators.code.analysis import (
    CodeFenceExtractor,
    CodeLanguageTagger,
    CodeTokenizer,
    PythonStaticAnalyzer,
    RuffLintCounter,
    analyze_python,
)
from prepflow.operators.text.dedup import MinHashDedup
from tests.operators.code.conftest import files_table, stdlib


def test_language_from_names_and_shebangs():
    pip_script = next(
        p for p in sorted(Path("/usr/bin").iterdir())
        if p.is_file() and p.read_bytes()[:40].startswith((b"#!/usr/bin/python", b"#!/usr/bin/env python"))
    )  # fmt: skip
    files = [
        ("textwrap.py", "x"),
        ("/usr/include/aio.h", "x"),
        ("jquery.min.js", "x"),
        ("Makefile", "x"),
        (pip_script.name, pip_script.read_text(errors="replace")),
        ("bashbug", Path("/usr/bin/bashbug").read_text(errors="replace")),
        ("mystery", "plain text"),
    ]
    out = CodeLanguageTagger().bind({}).run_batch(files_table(files)).kept
    assert out.column("language").to_pylist() == [
        "Python", "C", "JavaScript", "Makefile", "Python", "Shell", "unknown",
    ]  # fmt: skip


def test_static_analysis_agrees_with_compile(stdlib_files):
    broken = [f for f in stdlib_files if f[0].startswith("lib2to3/tests/data/")]
    files = (
        [f for f in stdlib_files[::25] if f[0] != "abc.py"]
        + broken
        + [("abc.py", stdlib("abc.py"))]
    )
    assert 80 < len(files) < 160
    out = PythonStaticAnalyzer().bind({}).run_batch(files_table(files)).kept
    parses = out.column("parses").to_pylist()
    for (path, text), ok in zip(files, parses, strict=True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(text, path, "exec")
            expect = True
        except SyntaxError:
            expect = False
        assert ok == expect, path
    assert not all(parses)  # lib2to3's Python 2 test data does not parse
    row = out.slice(len(files) - 1, 1).to_pylist()[0]
    assert row["imports"] == ["_abc", "_py_abc"] and row["n_classes"] >= 4


def test_complexity_and_counts_of_a_known_function():
    source = (
        "import os\nfrom collections import abc\n\n"
        "def f(xs, flag):\n"
        "    # comment\n"
        "    total = 0\n"
        "    for x in xs:\n"
        "        if x > 0 and flag:\n"
        "            total += x\n"
        "        elif x < 0:\n"
        "            total -= 1\n"
        "    return [y for y in xs if y]\n"
    )
    facts = analyze_python(source)
    # 1 + for + if + and + elif + comprehension + its if
    assert facts["max_complexity"] == 7
    assert facts["imports"] == ["collections", "os"]
    assert (facts["n_functions"], facts["lines_of_code"]) == (1, 10)
    assert analyze_python("def f(:\n")["syntax_error"] == "line 1: invalid syntax"


def test_ruff_counts_real_findings():
    sources = [
        "import os\n\ndef f():\n    return undefined_name\n",
        stdlib("textwrap.py"),
        "def f(:\n",
        None,
    ]
    batch = pa.table({"_id": [0, 1, 2, 3], "text": pa.array(sources, pa.string())})
    out = RuffLintCounter().bind({}).run_batch(batch).kept
    assert out.column("lint_codes").to_pylist()[0] == ["F401", "F821"]
    counts = out.column("lint_count").to_pylist()
    assert counts[0] == 2 and counts[2] >= 1 and counts[3] is None


def test_tokens_ignore_layout_and_comments_and_minhash_finds_the_copy(stdlib_files):
    original = stdlib("textwrap.py")
    # the same code, re-indented by 2, its comment lines and module docstring rewritten
    lines = [
        re.sub(r"^( +)", lambda m: " " * (len(m.group(1)) // 2), line)
        for line in original.split("\n")
    ]
    comments = {
        t.start[0]
        for t in tokenize.generate_tokens(io.StringIO(original).readline)
        if t.type == tokenize.COMMENT and t.line.lstrip().startswith("#")
    }
    lines = [" # reviewed" if k in comments else ln for k, ln in enumerate(lines, 1)]
    copy = "\n".join(lines).replace('"""Text wrapping', '"""Vendored copy of text wrapping', 1)
    assert copy != original
    tok = CodeTokenizer().bind({})
    a, b = (tok.tokens(t, "Python") for t in (original, copy))
    assert a == b
    files = [("textwrap.py", original), ("vendored/textwrap.py", copy), *stdlib_files[100:140]]
    tokens = tok.run_batch(files_table(files)).kept
    dedup = MinHashDedup(threshold=0.8).bind({"text": "code_tokens"})
    dedup.fit([tokens])
    r = dedup.run_batch(tokens)
    assert r.dropped.column("path").to_pylist() == ["vendored/textwrap.py"]
    assert r.dropped.column("_reason").to_pylist() == [
        "near-duplicate of _id 0 (est. jaccard 1.00)"
    ]


def test_fence_extractor():
    replies = [
        "Here:\n```python\nprint(1)\n```\nDone.",
        "```js\nx()\n```\n```python\ny()\n```",
        "z()",
    ]
    batch = pa.table({"_id": [0, 1, 2], "text": replies})
    out = CodeFenceExtractor().bind({}).run_batch(batch).kept
    assert out.column("text").to_pylist() == ["print(1)", "y()", "z()"]


def test_template_files_are_near_duplicates_only_with_punctuation():
    names = [
        "encodings/euc_jp.py",
        "encodings/euc_jis_2004.py",
        "encodings/shift_jis.py",
        "textwrap.py",
    ]
    files = [(n, stdlib(n)) for n in names]

    def dropped(**params):
        tokens = CodeTokenizer(**params).bind({}).run_batch(files_table(files)).kept
        dedup = MinHashDedup(threshold=0.85).bind({"text": "code_tokens"})
        dedup.fit([tokens])
        r = dedup.run_batch(tokens)
        return [] if r.dropped is None else r.dropped.column("path").to_pylist()

    assert dropped() == ["encodings/euc_jis_2004.py", "encodings/shift_jis.py"]
    assert dropped(punctuation=False) == []
