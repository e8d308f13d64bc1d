"""What the code operators share about source files: languages by file name, comment syntax,
fenced code in model replies, and column-wise line statistics and code tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: file extension -> language (the names GitHub linguist uses)
EXTENSIONS = {
    ".py": "Python", ".pyi": "Python", ".pyw": "Python",
    ".c": "C", ".h": "C",
    ".cc": "C++", ".cpp": "C++", ".cxx": "C++", ".hh": "C++", ".hpp": "C++", ".hxx": "C++",
    ".cs": "C#", ".java": "Java", ".kt": "Kotlin", ".scala": "Scala", ".go": "Go",
    ".rs": "Rust", ".swift": "Swift", ".m": "Objective-C", ".mm": "Objective-C++",
    ".js": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript", ".jsx": "JavaScript",
    ".ts": "TypeScript", ".tsx": "TypeScript", ".rb": "Ruby", ".php": "PHP", ".pl": "Perl",
    ".pm": "Perl", ".lua": "Lua", ".r": "R", ".jl": "Julia", ".hs": "Haskell", ".ml": "OCaml",
    ".ex": "Elixir", ".exs": "Elixir", ".erl": "Erlang", ".clj": "Clojure", ".dart": "Dart",
    ".sh": "Shell", ".bash": "Shell", ".zsh": "Shell", ".ps1": "PowerShell", ".sql": "SQL",
    ".s": "Assembly", ".asm": "Assembly", ".f90": "Fortran", ".f": "Fortran", ".vim": "Vim Script",
    ".html": "HTML", ".htm": "HTML", ".css": "CSS", ".scss": "SCSS", ".xml": "XML",
    ".json": "JSON", ".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".ini": "INI",
    ".cfg": "INI", ".md": "Markdown", ".rst": "reStructuredText", ".txt": "Text",
    ".tex": "TeX", ".cmake": "CMake", ".mk": "Makefile",
}  # fmt: skip
FILENAMES = {
    "makefile": "Makefile", "gnumakefile": "Makefile", "dockerfile": "Dockerfile",
    "cmakelists.txt": "CMake", "meson.build": "Meson", "rakefile": "Ruby", "gemfile": "Ruby",
}  # fmt: skip
SHEBANGS = {"python": "Python", "sh": "Shell", "bash": "Shell", "node": "JavaScript",
            "perl": "Perl", "ruby": "Ruby", "zsh": "Shell", "lua": "Lua"}  # fmt: skip
#: languages whose text is data or prose rather than code
DATA_LANGUAGES = frozenset(
    {"JSON", "YAML", "TOML", "INI", "XML", "Text", "Markdown", "reStructuredText", "CSV"}
)
#: line-comment starts (after indentation) and block comment delimiters per language
_HASH = ("#",)
_SLASH = ("//", "/*", "*", "*/")
LINE_COMMENTS: dict[str, tuple[str, ...]] = {
    "Python": _HASH, "Shell": _HASH, "Ruby": _HASH, "Perl": _HASH, "R": _HASH, "Julia": _HASH,
    "YAML": _HASH, "TOML": _HASH, "Makefile": _HASH, "CMake": _HASH, "Dockerfile": _HASH,
    "PowerShell": _HASH, "Elixir": _HASH, "C": _SLASH, "C++": _SLASH, "C#": _SLASH,
    "Java": _SLASH, "Kotlin": _SLASH, "Scala": _SLASH, "Go": _SLASH, "Rust": _SLASH,
    "Swift": _SLASH, "JavaScript": _SLASH, "TypeScript": _SLASH, "PHP": (*_SLASH, "#"),
    "Objective-C": _SLASH, "Dart": _SLASH, "CSS": ("/*", "*", "*/"), "SCSS": _SLASH,
    "SQL": ("--", "/*", "*"), "Lua": ("--",), "Haskell": ("--", "{-"), "Erlang": ("%",),
    "TeX": ("%",), "Assembly": (";", "#"), "Vim Script": ('"',), "Fortran": ("!",),
    "Clojure": (";",), "OCaml": ("(*", "*"), "HTML": ("<!--",), "XML": ("<!--",),
}  # fmt: skip

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def language_of(path: str | None, text: str | None = None) -> str | None:
    """The language of a file from its name, else from a shebang line; None when unknown."""
    if path:
        p = PurePosixPath(path)
        name = p.name.lower()
        if name in FILENAMES:
            return FILENAMES[name]
        if name.endswith((".min.js", ".min.css")):
            return "JavaScript" if name.endswith("js") else "CSS"
        if (lang := EXTENSIONS.get(p.suffix.lower())) is not None:
            return lang
    if text and text.startswith("#!"):
        first = text.split("\n", 1)[0]
        for word in reversed(re.split(r"[\s/]+", first)):
            base = re.sub(r"[\d.]+$", "", word)
            if base in SHEBANGS:
                return SHEBANGS[base]
    return None


def fenced_code(reply: str, language: str | None = "python") -> str:
    """The code of a model reply: the first fenced block (of ``language`` when several), else
    the whole reply when it has no fence (its indentation kept: it may be a function body)."""
    blocks = _FENCE.findall(reply)
    if not blocks:
        return reply.strip("\n").rstrip()
    if language:
        for tag, body in blocks:
            if tag.lower() in (language.lower(), language.lower()[:2]):
                return body.strip("\n")
    return blocks[0][1].strip("\n")


@dataclass(frozen=True)
class LineStats:
    """Per-document line statistics of a string column, computed column-wise."""

    lines: np.ndarray  # number of lines
    max_length: np.ndarray  # longest line, in characters
    mean_length: np.ndarray  # mean line length
    chars: np.ndarray  # characters


def line_stats(texts: pa.Array) -> LineStats:
    """Line counts and lengths for every document at once (nulls count as empty)."""
    texts = pc.fill_null(texts, "")
    chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    split = pc.split_pattern(texts, "\n")
    if isinstance(split, pa.ChunkedArray):
        split = split.combine_chunks()
    counts = pc.list_value_length(split).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = pc.utf8_length(split.flatten()).to_numpy(zero_copy_only=False).astype(np.int64)
    max_length = np.zeros(len(counts), np.int64)
    nonempty = counts > 0
    if lengths.size:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        max_length[nonempty] = np.maximum.reduceat(lengths, starts[nonempty])
    # newline characters are not part of any line
    mean_length = (chars - np.maximum(counts - 1, 0)) / np.maximum(counts, 1)
    return LineStats(counts, max_length, mean_length, chars)


def string_column(batch: pa.Table, name: str) -> pa.Array:
    column = batch.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    return column


def token_lists(texts: pa.Array) -> pa.ListArray:
    """Each text's code tokens (runs of word characters, and every other non-space character
    alone), computed by Arrow for the whole column: the unit of decontamination."""
    spaced = pc.replace_substring_regex(pc.fill_null(texts, ""), r"([^\w\s])", r" \1 ")
    lists = pc.utf8_split_whitespace(spaced)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    return lists
