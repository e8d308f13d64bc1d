"""Rule filters for code pretraining corpora, as DataFlow's ``code_pt_filter`` pipeline and The
Stack / StarCoder's data pipeline apply them.

Every filter reads the file's content (``text``) and, where the rule needs it, its path
(``path``: a file name or path, for the language and file type). Each dropped file records
the rule, the measured value and the threshold with its parameter's name, e.g.
``max_line_length: 1204 > 1000``. A threshold of ``None`` switches its rule off. Measures are
computed for the whole batch at once where Arrow can (line lengths, character classes,
encoded blobs); the rest is one pass of Python per file.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import FilterOperator, Params
from prepflow.operators.code.credentials import SecretScanner
from prepflow.operators.code.source import (
    DATA_LANGUAGES,
    LINE_COMMENTS,
    language_of,
    line_stats,
    string_column,
)

DF = "DataFlow code_pt_filter"
STACK = "The Stack / StarCoder"


def over(name: str, value: float, threshold: float) -> str:
    return f"{name}: {_number(value)} > {_number(threshold)}"


def under(name: str, value: float, threshold: float) -> str:
    return f"{name}: {_number(value)} < {_number(threshold)}"


def _number(value: float) -> str:
    """Counts as integers (1204000, not 1.204e+06), fractions to 4 significant digits."""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


class CodeFilter(FilterOperator):
    """Base of the code rule filters: ``verdicts`` gives each file's drop reason or None."""

    abstract = True
    domain = "code"
    cpu_heavy = True
    inputs = (
        Column("text", "string", "the source file's content"),
        Column("path", "string", "the file's path or name (language, file type)", optional=True),
    )
    #: whether a rule reads the path (without the column, path rules are skipped)
    uses_path: ClassVar[bool] = False

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        raise NotImplementedError

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        texts = string_column(batch, self.col("text"))
        name = self.col("path")
        paths = (
            batch.column(name).to_pylist()
            if self.uses_path and name in batch.column_names
            else [None] * len(texts)
        )
        reasons = self.verdicts(pc.fill_null(texts, ""), paths)
        nulls = texts.is_null().to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(nulls):
            reasons[i] = f"{self.col('text')} is null"
        mask = pa.array([r is None for r in reasons], pa.bool_())
        return mask, pa.array(reasons, pa.string())


class CodeFileFilter(CodeFilter):
    """Keeps files of wanted types and sizes: the file-type rules of code corpora.

    Drops files larger than ``max_bytes`` (The Stack: 1 MB), files whose name ends in one of
    ``exclude_suffixes`` (minified bundles, source maps, lock files), languages outside
    ``languages`` when given, data files (JSON, YAML, TOML, XML, text...) longer than
    ``max_data_lines`` (DataFlow: 512), and plain-text files whose name is not one of
    ``text_names`` (DataFlow keeps README, NOTES, TODO, requirements...). Without a ``path``
    column only the size rule applies.
    """

    uses_path = True

    class Params(Params):
        min_bytes: int | None = Field(1, ge=0, description="smallest file (1: drop empty files)")
        max_bytes: int | None = Field(1_000_000, ge=1, description=f"largest file; {STACK}")
        exclude_suffixes: list[str] = Field(
            [".min.js", ".min.css", ".map", ".lock", ".svg", ".pb.go", "_pb2.py"],
            description="file name endings to drop (generated or minified files)",
        )
        languages: list[str] | None = Field(
            None, description="keep only these languages (e.g. [Python, C]); None keeps all"
        )
        max_data_lines: int | None = Field(
            512, ge=1, description=f"most lines of a data/text file (JSON, YAML...); {DF}"
        )
        text_names: list[str] = Field(
            ["readme", "notes", "todo", "description", "cmakelists", "requirements", "license"],
            description=f"plain-text file names (without extension) to keep; {DF}",
        )

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        p = self.params
        sizes = pc.binary_length(texts.cast(pa.binary())).to_numpy(zero_copy_only=False)
        wanted = {lang.lower() for lang in p.languages} if p.languages else None
        out: list[str | None] = []
        for i, path in enumerate(paths):
            if p.min_bytes is not None and sizes[i] < p.min_bytes:
                out.append(under("min_bytes", sizes[i], p.min_bytes))
                continue
            if p.max_bytes is not None and sizes[i] > p.max_bytes:
                out.append(over("max_bytes", sizes[i], p.max_bytes))
                continue
            if path is None:
                out.append(None)
                continue
            name = PurePosixPath(path).name.lower()
            if suffix := next((s for s in p.exclude_suffixes if name.endswith(s)), None):
                out.append(f"exclude_suffixes: {name} ends in {suffix}")
                continue
            lang = language_of(path)
            if wanted is not None and (lang or "unknown").lower() not in wanted:
                out.append(f"languages: {lang or 'unknown'} not in {p.languages}")
            elif (
                lang in DATA_LANGUAGES
                and p.max_data_lines
                and (n := texts[i].as_py().count("\n") + 1) > p.max_data_lines
            ):
                out.append(over("max_data_lines", n, p.max_data_lines) + f" ({lang})")
            elif lang == "Text" and name.rsplit(".", 1)[0] not in p.text_names:
                out.append(f"text_names: {name} is a text file not named like documentation")
            else:
                out.append(None)
        return out


class AutogeneratedCodeFilter(CodeFilter):
    """Drops files whose first lines say they were generated (protobuf, parsers, migrations,
    lock files...): the marker and its line are the reason."""

    class Params(Params):
        markers: list[str] = Field(
            [
                "auto-generated", "autogenerated", "automatically generated",
                "generated automatically", "this file is generated", "do not edit",
                "@generated", "code generated by",
            ],
            description=f"case-insensitive phrases that mark generated files; {DF} plus "
            "'do not edit', '@generated' and Go's 'Code generated by'",
        )  # fmt: skip
        lines: int = Field(5, ge=1, description=f"how many leading lines to search; {DF}")

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        markers = [m.lower() for m in self.params.markers]
        n = self.params.lines
        out: list[str | None] = []
        for text in texts.to_pylist():
            reason = None
            for k, line in enumerate(text.split("\n", n)[:n], 1):
                low = line.lower()
                if marker := next((m for m in markers if m in low), None):
                    reason = f"markers: {marker!r} in line {k}"
                    break
            out.append(reason)
        return out


class CodeLineLengthFilter(CodeFilter):
    """Drops files with very long lines (minified or data), a long average line, or too many
    lines. Prose-like languages (HTML, JSON, Markdown, TeX, text, XML) only get the
    ``max_prose_line_length`` bound, as in DataFlow."""

    uses_path = True

    class Params(Params):
        max_line_length: int | None = Field(1000, ge=1, description=f"longest line; {DF}, {STACK}")
        max_mean_line_length: float | None = Field(
            100, gt=0, description=f"largest average line length; {DF}, {STACK}"
        )
        max_lines: int | None = Field(100_000, ge=1, description=f"most lines; {DF}")
        max_prose_line_length: int | None = Field(
            100_000, ge=1, description=f"longest line in HTML/JSON/Markdown/TeX/text/XML; {DF}"
        )

    PROSE: ClassVar[frozenset[str]] = frozenset(
        {"HTML", "JSON", "Markdown", "TeX", "Text", "XML", "reStructuredText"}
    )

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        p = self.params
        s = line_stats(texts)
        out: list[str | None] = []
        for i, path in enumerate(paths):
            prose = path is not None and language_of(path) in self.PROSE
            if p.max_lines is not None and s.lines[i] > p.max_lines:
                out.append(over("max_lines", s.lines[i], p.max_lines))
            elif prose:
                limit = p.max_prose_line_length
                bad = limit is not None and s.max_length[i] > limit
                out.append(over("max_prose_line_length", s.max_length[i], limit) if bad else None)
            elif p.max_line_length is not None and s.max_length[i] > p.max_line_length:
                out.append(over("max_line_length", s.max_length[i], p.max_line_length))
            elif p.max_mean_line_length is not None and s.mean_length[i] > p.max_mean_line_length:
                out.append(over("max_mean_line_length", s.mean_length[i], p.max_mean_line_length))
            else:
                out.append(None)
        return out


class CodeAlphaFilter(CodeFilter):
    """Drops files with too few letters (binary, encrypted or numeric dumps): the text
    composition rule. Assembly counts letters and digits, as in DataFlow."""

    uses_path = True

    class Params(Params):
        min_alpha_fraction: float | None = Field(
            0.25, ge=0, le=1, description=f"least fraction of letters; {DF}, {STACK}"
        )

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        low = self.params.min_alpha_fraction
        if low is None:
            return [None] * len(texts)
        chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
        alpha = _fraction_of(texts, r"[^\pL]+", chars)
        alnum = None
        out: list[str | None] = []
        for i, path in enumerate(paths):
            value, name = alpha[i], "min_alpha_fraction"
            if path is not None and language_of(path) == "Assembly":
                if alnum is None:
                    alnum = _fraction_of(texts, r"[^\pL\pN]+", chars)
                value, name = alnum[i], "min_alpha_fraction (letters+digits, assembly)"
            # an empty file has no composition: the size rules judge it
            out.append(under(name, value, low) if chars[i] and value < low else None)
        return out


def _fraction_of(texts: pa.Array, others: str, chars: np.ndarray) -> np.ndarray:
    """Fraction of each text's characters left after removing runs matching ``others``."""
    left = pc.utf8_length(pc.replace_substring_regex(texts, others, ""))
    return left.to_numpy(zero_copy_only=False) / np.maximum(chars, 1)


class EncodedDataFilter(CodeFilter):
    """Drops files made mostly of encoded data: base64, hex byte lists or ``\\uXXXX`` escapes.

    The fraction of the file's characters inside such runs (regexes of StarCoder's pipeline,
    as DataFlow uses them; the hex one also takes ``, ``-separated bytes) must stay at most
    ``max_fraction``; with ``max_run_chars`` a single
    run longer than that drops the file too (StarCoder: 1024).
    """

    PATTERNS: ClassVar[dict[str, str]] = {
        "base64": r"[a-zA-Z0-9+/=\n]{64,}",
        # StarCoder's hex pattern, also matching ", "-separated arrays (xxd -i, C sources)
        "hex": r"(?:\b(?:0x|\\x)?[0-9a-fA-F]{2}(?:,\s*|\b\s*)){8,}",
        "unicode": r"(?:\\u[0-9a-fA-F]{4}){8,}",
    }

    class Params(Params):
        max_fraction: float | None = Field(
            0.5, ge=0, le=1, description=f"largest fraction of encoded characters; {DF}"
        )
        max_run_chars: int | None = Field(
            None, ge=1, description=f"longest single encoded run (off; {STACK}: 1024)"
        )

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        p = self.params
        chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
        out: list[str | None] = [None] * len(texts)
        for kind, pattern in self.PATTERNS.items():
            todo = np.array([r is None for r in out])
            hits = pc.match_substring_regex(texts, pattern).to_numpy(zero_copy_only=False) & todo
            if not hits.any():
                continue
            rows = np.flatnonzero(hits)
            subset = texts.take(pa.array(rows))
            left = pc.utf8_length(pc.replace_substring_regex(subset, pattern, ""))
            matched = chars[rows] - left.to_numpy(zero_copy_only=False)
            compiled = re.compile(pattern) if p.max_run_chars else None
            for row, n, text in zip(rows, matched, subset.to_pylist(), strict=True):
                fraction = n / max(chars[row], 1)
                if p.max_fraction is not None and fraction > p.max_fraction:
                    out[row] = over("max_fraction", fraction, p.max_fraction) + f" ({kind})"
                elif compiled is not None and p.max_run_chars is not None:
                    longest = max((len(m.group()) for m in compiled.finditer(text)), default=0)
                    if longest > p.max_run_chars:
                        out[row] = over("max_run_chars", longest, p.max_run_chars) + f" ({kind})"
        return out


class CommentRatioFilter(CodeFilter):
    """Keeps files whose comments and docstrings are a sensible fraction of their characters.

    Too little (StarCoder dropped Python/Java/JavaScript files under 1%) and too much (over
    80%: commented-out code, license-only files) are both dropped. Comments are lines starting
    with the language's comment syntax (after indentation) and, in Python, docstrings.
    Languages without known comment syntax, or without a ``path`` to tell, are kept.
    """

    uses_path = True

    class Params(Params):
        min_fraction: float | None = Field(
            0.01, ge=0, le=1, description=f"least comment fraction; {STACK}"
        )
        max_fraction: float | None = Field(
            0.8, ge=0, le=1, description=f"largest comment fraction; {STACK}"
        )

    #: a triple-quoted string that starts its line: a docstring, not an assigned string
    _DOCSTRING: ClassVar[re.Pattern[str]] = re.compile(
        r'^[ \t]*[rRuU]?("""|\'\'\')(.*?)\1', re.S | re.M
    )

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        p = self.params
        values = texts.to_pylist()
        langs = [
            language_of(path, text[:200]) if path is not None else None
            for path, text in zip(paths, values, strict=True)
        ]
        fractions = comment_fractions(texts, values, langs, self._DOCSTRING)
        return first_failures(
            [
                ("min_fraction", fractions, p.min_fraction, "min"),
                ("max_fraction", fractions, p.max_fraction, "max"),
            ],
            len(texts),
        )


def comment_fractions(
    texts: pa.Array, values: list[str], languages: list[str | None], docstring: re.Pattern[str]
) -> np.ndarray:
    """Per file: characters of comment lines (and Python docstrings) over the characters of
    all its lines, each line stripped of surrounding whitespace; NaN where the language's
    comment syntax is unknown or the file is blank (no rule applies)."""
    n = len(texts)
    lines = pc.split_pattern(texts, "\n")
    counts = pc.list_value_length(lines).to_numpy(zero_copy_only=False).astype(np.int64)
    stripped = pc.utf8_trim_whitespace(lines.flatten())
    lengths = pc.utf8_length(stripped).to_numpy(zero_copy_only=False).astype(np.float64)
    doc_of = np.repeat(np.arange(n), counts)
    total = np.bincount(doc_of, lengths, minlength=n)
    comment = np.zeros(n)
    by_prefixes: dict[tuple[str, ...], list[int]] = {}
    for i, lang in enumerate(languages):
        if (prefixes := LINE_COMMENTS.get(lang or "")) is not None:
            by_prefixes.setdefault(prefixes, []).append(i)
    for prefixes, docs in by_prefixes.items():
        starts = np.zeros(len(stripped), np.bool_)
        for prefix in prefixes:
            starts |= pc.starts_with(stripped, prefix).to_numpy(zero_copy_only=False)
        mine = np.isin(doc_of, docs)
        comment += np.bincount(doc_of, lengths * (starts & mine), minlength=n)
    for i, lang in enumerate(languages):
        if lang == "Python":  # docstring characters: their lines do not start with '#'
            comment[i] += sum(len(m.group(2).strip()) for m in docstring.finditer(values[i]))
    known = np.array([lang in LINE_COMMENTS for lang in languages], np.bool_)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known & (total > 0), comment / total, np.nan)


class CodeDocQualityFilter(CodeFilter):
    """DataFlow's document-quality rules for code: size in characters and words, repeated
    lines, curly-bracket density, all-caps words and word entropy (defaults: DataFlow's
    code_pt_filter pipeline, except for repeated lines, which real code has many of:
    closing braces, ``return None``...). Words are runs of letters, digits and ``_``."""

    class Params(Params):
        min_chars: int | None = Field(100, ge=0, description=f"fewest characters; {DF}")
        max_chars: int | None = Field(100_000, ge=0, description=f"most characters; {DF}")
        min_words: int | None = Field(10, ge=0, description=f"fewest words; {DF}")
        max_words: int | None = Field(50_000, ge=0, description=f"most words; {DF}")
        max_duplicate_lines: float | None = Field(
            0.5,
            ge=0,
            le=1,
            description="largest fraction of non-blank lines that repeat another line "
            f"({DF}: 0.3, which drops much idiomatic C)",
        )
        max_curly_fraction: float | None = Field(
            0.1, ge=0, le=1, description=f"largest fraction of characters that are {{ or }}; {DF}"
        )
        max_caps_fraction: float | None = Field(
            0.3, ge=0, le=1, description=f"largest fraction of ALL-CAPS words; {DF}"
        )
        min_entropy: float | None = Field(
            2.0, ge=0, description=f"least unigram entropy of the words, in bits; {DF}"
        )

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        p = self.params
        n = len(texts)
        chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.float64)
        curly = sum(
            pc.count_substring(texts, c).to_numpy(zero_copy_only=False) for c in "{}"
        ) / np.maximum(chars, 1)
        words = pc.utf8_split_whitespace(pc.replace_substring_regex(texts, r"[^\pL\pN_]+", " "))
        n_words = pc.list_value_length(words).to_numpy(zero_copy_only=False).astype(np.float64)
        flat = words.flatten()
        doc = np.repeat(np.arange(n), n_words.astype(np.int64))
        rules = [
            ("min_chars", chars, p.min_chars, "min"),
            ("max_chars", chars, p.max_chars, "max"),
            ("max_curly_fraction", curly, p.max_curly_fraction, "max"),
            ("min_words", n_words, p.min_words, "min"),
            ("max_words", n_words, p.max_words, "max"),
        ]
        if p.max_duplicate_lines is not None:
            rules.append(
                ("max_duplicate_lines", _duplicate_lines(texts), p.max_duplicate_lines, "max")
            )
        if p.max_caps_fraction is not None:
            caps = pc.and_(pc.utf8_is_upper(flat), pc.greater(pc.utf8_length(flat), 1))
            caps = np.bincount(doc, caps.to_numpy(zero_copy_only=False), minlength=n)
            rules.append(
                ("max_caps_fraction", caps / np.maximum(n_words, 1), p.max_caps_fraction, "max")
            )
        if p.min_entropy is not None:
            # words are the documents' texts: an empty document has no entropy to judge
            entropy = np.where(n_words > 0, _entropy(doc, flat, n, n_words), np.inf)
            rules.append(("min_entropy", entropy, p.min_entropy, "min"))
        return first_failures(rules, n)


def first_failures(
    rules: list[tuple[str, np.ndarray, float | None, str]], n: int
) -> list[str | None]:
    """Per document, the reason of the first rule it fails (rules with a None threshold are
    off): ``name: value > threshold`` or ``name: value < threshold``."""
    out: list[str | None] = [None] * n
    todo = np.ones(n, np.bool_)
    for name, values, threshold, bound in rules:
        if threshold is None:
            continue
        with np.errstate(invalid="ignore"):
            bad = (values < threshold if bound == "min" else values > threshold) & todo
        for i in np.flatnonzero(bad):
            out[i] = (under if bound == "min" else over)(name, float(values[i]), threshold)
        todo &= ~bad
    return out


def _group_counts(doc: np.ndarray, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(document, count) of every distinct value within each document."""
    grouped = pa.table({"doc": doc, "v": values}).group_by(["doc", "v"]).aggregate([("v", "count")])
    return (
        grouped.column("doc").to_numpy(),
        grouped.column("v_count").to_numpy().astype(np.float64),
    )


def _entropy(doc: np.ndarray, words: pa.Array, n: int, n_words: np.ndarray) -> np.ndarray:
    """Unigram entropy of each document's words, in bits: log2 N - sum(c log2 c) / N."""
    d, c = _group_counts(doc, words)
    s = np.bincount(d, c * np.log2(c), minlength=n)
    total = np.maximum(n_words, 1)
    return np.log2(total) - s / total


def _duplicate_lines(texts: pa.Array) -> np.ndarray:
    """Fraction of each document's non-blank lines (stripped) that occur more than once."""
    lines = pc.split_pattern(texts, "\n")
    counts = pc.list_value_length(lines).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.utf8_trim_whitespace(lines.flatten())
    doc = np.repeat(np.arange(len(texts)), counts)
    keep = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
    d, c = _group_counts(doc[keep], pc.filter(flat, pa.array(keep)))
    total = np.bincount(d, c, minlength=len(texts))
    dup = np.bincount(d, c * (c > 1), minlength=len(texts))
    return dup / np.maximum(total, 1)


class CodeSecretsFilter(CodeFilter):
    """Drops files that contain credentials: private keys, cloud and API tokens (AWS, GitHub,
    Slack, Google, Stripe, OpenAI), JWTs, and high-entropy values assigned to names like
    ``password`` or ``api_key``. The reason names the kind and the line, never the secret.
    Use :class:`CodeSecretRedactor` to keep such files with the secrets replaced instead."""

    class Params(Params):
        kinds: list[str] | None = Field(
            None, description=f"secret kinds to look for (default all: {SecretScanner.KINDS})"
        )
        min_entropy: float = Field(
            3.5, ge=0, description="least entropy (bits/char) of a generic assigned secret"
        )

    def setup(self, ctx: Any) -> None:
        self._scanner = SecretScanner(self.params.kinds, self.params.min_entropy)

    def verdicts(self, texts: pa.Array, paths: list[str | None]) -> list[str | None]:
        scanner = getattr(self, "_scanner", None) or SecretScanner(
            self.params.kinds, self.params.min_entropy
        )
        out: list[str | None] = [None] * len(texts)
        for row in scanner.candidates(texts):
            found = scanner.find(texts[row].as_py())
            if found:
                kind, line = found[0].kind, found[0].line
                more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
                out[row] = f"secrets: {kind} at line {line}{more}"
        return out

    def check(self) -> list[str]:
        return SecretScanner.check_kinds(self.name, self.params.kinds)
