"""Static looks at code, without running it: language, Python syntax trees (parses, imports,
definitions, cyclomatic complexity), ruff's lint count, code tokens for near-dup, and the code
inside a model's fenced reply."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError
from prepflow.core.operator import (
    EvaluateOperator,
    GenerateOperator,
    Params,
    RefineOperator,
    Requirements,
)
from prepflow.operators.code.source import (
    LINE_COMMENTS,
    fenced_code,
    language_of,
    string_column,
)


def set_column(batch: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in batch.column_names:
        return batch.set_column(batch.column_names.index(name), name, values)
    return batch.append_column(name, values)


class CodeLanguageTagger(EvaluateOperator):
    """Writes ``language`` from each file's name (extension, well-known names like
    ``Makefile``) or, failing that, its shebang line; ``unknown`` when neither tells."""

    domain = "code"
    inputs = (
        Column("path", "string", "the file's path or name", optional=True),
        Column("text", "string", "the file's content (for a shebang)", optional=True),
    )
    outputs = (Column("language", "string", "e.g. Python, C, JavaScript, or unknown"),)

    def process(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        paths = _optional(batch, self.col("path"), n)
        texts = _optional(batch, self.col("text"), n)
        if paths is None and texts is None:
            raise ConfigError(f"{self.name}: bind 'path' or 'text' to an existing column")
        paths = paths or [None] * n
        texts = texts or [None] * n
        langs = [
            language_of(p, t[:200] if t else None) or "unknown"
            for p, t in zip(paths, texts, strict=True)
        ]
        return set_column(batch, self.col("language"), pa.array(langs, pa.string()))


def _optional(batch: pa.Table, name: str, n: int) -> list[Any] | None:
    return batch.column(name).to_pylist() if name in batch.column_names else None


class PythonStaticAnalyzer(EvaluateOperator):
    """Parses each Python source with ``ast`` and writes what its syntax tree says.

    ``parses`` and ``syntax_error`` (``line N: message``, or null), the top-level modules it
    imports, how many functions and classes it defines, the largest cyclomatic complexity of
    its functions (McCabe: 1 + branches, ``and``/``or`` and comprehension conditions) and its
    lines of code (non-blank, non-comment). A file that does not parse gets zeros.
    """

    domain = "code"
    cpu_heavy = True
    inputs = (Column("text", "string", "Python source"),)
    outputs = (
        Column("parses", "bool", "the source is valid Python"),
        Column("syntax_error", "string", "line N: message, or null"),
        Column("imports", "list<string>", "top-level modules imported"),
        Column("n_functions", "int", "functions and methods defined"),
        Column("n_classes", "int", "classes defined"),
        Column("max_complexity", "int", "largest cyclomatic complexity of a function"),
        Column("lines_of_code", "int", "non-blank, non-comment lines"),
    )

    def process(self, batch: pa.Table) -> pa.Table:
        rows = [analyze_python(t) for t in batch.column(self.col("text")).to_pylist()]
        for c in self.outputs:
            values = pa.array([r[c.name] for r in rows], _TYPES[c.type])
            batch = set_column(batch, self.col(c.name), values)
        return batch


_TYPES = {"bool": pa.bool_(), "string": pa.string(), "int": pa.int64(), "list<string>": pa.list_(pa.string())}  # fmt: skip
_BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.With,
             ast.AsyncWith, ast.IfExp, ast.Assert, ast.match_case)  # fmt: skip


def analyze_python(source: str | None) -> dict[str, Any]:
    """The static facts :class:`PythonStaticAnalyzer` writes, for one source."""
    out: dict[str, Any] = {"parses": False, "syntax_error": None, "imports": [],
                           "n_functions": 0, "n_classes": 0, "max_complexity": 0,
                           "lines_of_code": 0}  # fmt: skip
    if source is None:
        out["syntax_error"] = "no source (null)"
        return out
    try:
        with warnings.catch_warnings():  # the code's own warnings are not the run's
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        out["syntax_error"] = f"line {line}: {getattr(e, 'msg', e)}" if line else str(e)
        return out
    imports: set[str] = set()
    functions = classes = 0
    complexity = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports.add(node.module.split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions += 1
            complexity = max(complexity, cyclomatic(node))
        elif isinstance(node, ast.ClassDef):
            classes += 1
    out.update(
        parses=True,
        imports=sorted(imports),
        n_functions=functions,
        n_classes=classes,
        max_complexity=complexity,
        lines_of_code=sum(
            1 for ln in source.splitlines() if (s := ln.strip()) and not s.startswith("#")
        ),
    )
    return out


def cyclomatic(fn: ast.AST) -> int:
    """McCabe complexity of a function, nested functions excluded."""
    score = 1
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(node, _BRANCHES):
            score += 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        stack.extend(ast.iter_child_nodes(node))
    return score


class RuffLintCounter(EvaluateOperator):
    """Counts ruff's findings in each Python source (``lint_count``) and lists their rule codes
    (``lint_codes``, e.g. ``F401``). One ruff process checks the whole batch (written to a
    temporary directory); ruff parses the code and never runs it. A file ruff cannot parse
    counts its syntax errors."""

    domain = "code"
    cpu_heavy = True
    requires = Requirements(packages=("ruff",), extra="code")
    inputs = (Column("text", "string", "Python source"),)
    outputs = (
        Column("lint_count", "int", "ruff findings"),
        Column("lint_codes", "list<string>", "distinct rule codes found, sorted"),
    )

    class Params(Params):
        select: list[str] = Field(
            ["E4", "E7", "E9", "F"], description="ruff rule selectors (default: ruff's defaults)"
        )

    def setup(self, ctx: Any) -> None:
        self._ruff = ruff_binary()

    def process(self, batch: pa.Table) -> pa.Table:
        ruff = getattr(self, "_ruff", None) or ruff_binary()
        texts = batch.column(self.col("text")).to_pylist()
        counts: list[int | None] = [None if t is None else 0 for t in texts]
        codes: list[set[str]] = [set() for _ in texts]
        with tempfile.TemporaryDirectory(prefix="prepflow-ruff-") as tmp:
            for i, text in enumerate(texts):
                if text is not None:
                    Path(tmp, f"f{i}.py").write_text(text, encoding="utf-8", errors="replace")
            found = _run_ruff(ruff, tmp, self.params.select)
        for item in found:
            i = int(Path(item["filename"]).stem[1:])
            counts[i] = (counts[i] or 0) + 1
            codes[i].add(item.get("code") or "syntax-error")
        batch = set_column(batch, self.col("lint_count"), pa.array(counts, pa.int64()))
        listed = [sorted(c) if counts[i] is not None else None for i, c in enumerate(codes)]
        return set_column(batch, self.col("lint_codes"), pa.array(listed, pa.list_(pa.string())))


def ruff_binary() -> str:
    try:
        from ruff.__main__ import find_ruff_bin

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("ruff")
        if found is None:
            raise ConfigError("RuffLintCounter needs ruff: pip install 'prepflow[code]'") from None
        return found


def _run_ruff(ruff: str, folder: str, select: list[str]) -> list[dict[str, Any]]:
    cmd = [ruff, "check", "--isolated", "--no-cache", "--exit-zero", "--output-format", "json",
           "--select", ",".join(select), folder]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ruff failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout or "[]")


class CodeTokenizer(GenerateOperator):
    """Writes ``code_tokens``: the file as a space-separated sequence of its code tokens, for
    near-duplicate detection with ``MinHashDedup`` over that column.

    Comments (by the language's syntax, from ``path``) and Python docstrings are removed, so
    license headers and comment rewording do not decide similarity; layout never counts.
    Tokens are runs of letters, digits and ``_`` (identifiers, keywords, numbers) and each
    ASCII punctuation character, spelled as a word (``p28`` for ``(``: MinHash's own tokenizer
    would drop it). Punctuation is what makes short template files comparable: the standard
    library's CJK codec modules, which differ by a name, are near-duplicates with it and not
    without (``punctuation: false``, words only as The Stack split files, is twice as fast).
    Also writes ``n_code_tokens``. All in Arrow (RE2).
    """

    domain = "code"
    cpu_heavy = True
    inputs = (
        Column("text", "string", "source code"),
        Column("path", "string", "file path or name (comment syntax)", optional=True),
    )
    outputs = (
        Column("code_tokens", "string", "space-separated code tokens"),
        Column("n_code_tokens", "int", "how many tokens"),
    )

    class Params(Params):
        strip_comments: bool = Field(True, description="drop comments and Python docstrings")
        punctuation: bool = Field(True, description="keep punctuation characters as tokens")

    def process(self, batch: pa.Table) -> pa.Table:
        column = string_column(batch, self.col("text"))
        texts = pc.fill_null(column, "")
        paths = _optional(batch, self.col("path"), len(texts)) or [None] * len(texts)
        heads = pc.utf8_slice_codeunits(texts, 0, 200).to_pylist()
        languages = [language_of(p, h) for p, h in zip(paths, heads, strict=True)]
        joined, counts = self.code_tokens(texts, languages)
        nulls = column.is_null()
        joined = pc.if_else(nulls, pa.scalar(None, pa.string()), joined)
        counts = pc.if_else(nulls, pa.scalar(None, pa.int64()), counts)
        batch = set_column(batch, self.col("code_tokens"), joined)
        return set_column(batch, self.col("n_code_tokens"), counts)

    def code_tokens(
        self, texts: pa.Array, languages: list[str | None]
    ) -> tuple[pa.Array, pa.Array]:
        """(space-separated tokens, token count) of each text."""
        if self.params.strip_comments:
            texts = strip_comments(texts, languages)
        if self.params.punctuation:
            tokens = token_words(texts)
            return pc.binary_join(tokens, " "), pc.list_value_length(tokens).cast(pa.int64())
        joined = pc.utf8_trim_whitespace(pc.replace_substring_regex(texts, r"[^\pL\pN_]+", " "))
        spaces = pc.count_substring(joined, " ").cast(pa.int64())
        return joined, pc.if_else(pc.equal(joined, ""), 0, pc.add(spaces, 1))

    def tokens(self, text: str, language: str | None) -> list[str]:
        """The tokens of one source (what ``process`` joins into ``code_tokens``)."""
        joined, _ = self.code_tokens(pa.array([text], pa.string()), [language])
        return joined[0].as_py().split(" ") if joined[0].as_py() else []


def token_words(texts: pa.Array) -> pa.ListArray:
    """Each text's tokens: runs of letters, digits and ``_``, and each other non-space
    character alone, ASCII punctuation spelled as a word (``(`` -> ``p28``); all in Arrow."""
    spaced = pc.replace_substring_regex(texts, r"([^\pL\pN_\s])", r" \1 ")
    lists = pc.utf8_split_whitespace(spaced)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = lists.flatten()
    real = pc.not_equal(flat, "")  # split gives "" at the ends and for an empty text
    kept = np.bincount(
        np.repeat(np.arange(len(counts)), counts),
        real.to_numpy(zero_copy_only=False),
        minlength=len(counts),
    )
    flat = flat.filter(real)
    words = pc.coalesce(pc.take(_PUNCT_WORDS, pc.index_in(flat, value_set=_PUNCT)), flat)
    offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), words)


_PUNCT = pa.array([c for c in map(chr, range(33, 127)) if not (c.isalnum() or c == "_")])
_PUNCT_WORDS = pa.array([f"p{ord(c):x}" for c in _PUNCT.to_pylist()])


def strip_comments(texts: pa.Array, languages: list[str | None]) -> pa.Array:
    """``texts`` without comments: Python comments and docstrings, and for other languages
    the lines that start with their comment syntax; languages without known syntax are left
    as they are. Each group of rows is one regex pass of Arrow (RE2) over the column."""
    groups: dict[str, list[int]] = {}
    for i, lang in enumerate(languages):
        if lang == "Python":
            groups.setdefault("Python", []).append(i)
        elif (prefixes := LINE_COMMENTS.get(lang or "")) is not None:
            starts = "|".join(re.escape(p) for p in prefixes)
            groups.setdefault(rf"(?m)^[ \t]*(?:{starts})[^\n]*", []).append(i)
    if not groups:
        return texts
    parts, order = [], []
    for key, rows in groups.items():
        subset = texts.take(pa.array(rows, pa.int64()))
        pattern, replacement = (_PYTHON_NOISE, r"\1") if key == "Python" else (key, "")
        parts.append(pc.replace_substring_regex(subset, pattern, replacement))
        order += rows
    rest = sorted(set(range(len(texts))) - set(order))
    parts.append(texts.take(pa.array(rest, pa.int64())))
    order += rest
    stripped = pa.concat_arrays([p.cast(pa.string()) for p in parts])
    return stripped.take(pa.array(np.argsort(np.array(order, np.int64)), pa.int64()))


_TRIPLE = r"""(?:\"\"\"[\s\S]*?\"\"\"|\'\'\'[\s\S]*?\'\'\')"""
#: Python comments and docstrings (a triple-quoted string that starts its line), matched in one
#: scan that steps over every other string literal (group 1: kept), so a ``#`` in a string stays
_PYTHON_NOISE = (
    rf"(?m)^[ \t]*[rRuU]?{_TRIPLE}"
    rf"|([rRbBuUfF]{{0,2}}(?:{_TRIPLE}|\"(?:\\.|[^\"\\\n])*\"|\'(?:\\.|[^\'\\\n])*\'))"
    r"|#[^\n]*"
)


class CodeFenceExtractor(RefineOperator):
    """Replaces a model's reply with the code inside it: the first fenced block (preferring
    ``language``), or the reply itself when it has no fence. Use it after a generator whose
    prompt you replaced and whose replies may wrap code in prose."""

    domain = "code"
    inputs = (Column("text", "string", "a reply that may hold fenced code"),)
    outputs = (Column("text", "string", "the code"),)

    class Params(Params):
        language: str | None = Field("python", description="fence tag to prefer (None: first)")

    def process(self, batch: pa.Table) -> pa.Table:
        name = self.col("text")
        values = [
            None if t is None else fenced_code(t, self.params.language)
            for t in batch.column(name).to_pylist()
        ]
        return set_column(batch, name, pa.array(values, pa.string()))
