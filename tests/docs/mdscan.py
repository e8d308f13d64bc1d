"""Reading the documentation as Markdown: which files, their runnable blocks, links and anchors.

Parsed with markdown-it (CommonMark + tables), so code blocks, code spans and HTML comments are
told apart exactly as a renderer tells them apart.

A block is *runnable* when an HTML comment ``<!-- runnable -->`` stands right before its fence
(invisible on GitHub and on the site; the fence keeps its plain language, so every renderer
highlights it). Options follow a colon, comma-separated::

    <!-- runnable: file=my_ops.py -->     write the block to this file (a relative path; later
                                          blocks use it)
    <!-- runnable: llm -->                start the scripted OpenAI-compatible server first; the
                                          address http://127.0.0.1:8000/v1 in the block is it
    <!-- runnable: excerpt=PATH -->       the block's lines appear, in this order, in PATH (a
                                          file the blocks before it wrote, or else a file of the
                                          repository): a quoted file cannot drift from the original
    <!-- runnable: slow -->               run only with the slow tests (and so does every
                                          runnable block after it in the same file)

README.md's blocks run with the fast tests; the pages under docs/ run with the slow ones (CI runs
both), each page from its first block to its last.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
MARKER = re.compile(r"<!--\s*runnable(?::\s*(?P<opts>[^>]*?))?\s*-->")
PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")
FLAGS = {"llm", "slow"}
#: The OpenAI-compatible address runnable ``llm`` blocks are written with (vLLM's default port).
EXAMPLE_BASE_URL = "http://127.0.0.1:8000/v1"


class DocError(ValueError):
    """A malformed runnable marker, named by file and line."""


@dataclass(frozen=True)
class Block:
    path: Path
    #: 1-based line of the block's first code line
    line: int
    lang: str
    code: str
    file: str | None = None
    excerpt: str | None = None
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def executes(self) -> bool:
        return not (self.file or self.excerpt)

    @property
    def where(self) -> str:
        return f"{shown(self.path)}:{self.line}"


def shown(path: Path) -> str:
    """A document's path as messages and tracebacks give it: from the repository root."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def documents() -> list[Path]:
    """README.md, CHANGELOG.md and every Markdown file under docs/."""
    return [REPO / "README.md", REPO / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def tokens(path: Path) -> list[Token]:
    return _parser().parse(path.read_text(encoding="utf-8"))


def runnable_blocks(path: Path) -> list[Block]:
    """The runnable blocks of one document, in order."""
    toks = [t for t in tokens(path) if t.level == 0 and t.map is not None]
    blocks = []
    for i, tok in enumerate(toks):
        if tok.type != "html_block" or not (m := MARKER.fullmatch(tok.content.strip())):
            continue
        assert tok.map is not None
        where = f"{shown(path)}:{tok.map[0] + 1}"
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if nxt is None or nxt.type != "fence":
            raise DocError(f"{where}: a runnable marker must stand right before a fenced block")
        assert nxt.map is not None
        lang = nxt.info.split()[0] if nxt.info.strip() else ""
        file, excerpt, flags = _options(m.group("opts") or "", where)
        if file is None and excerpt is None and lang not in PYTHON + SHELL:
            raise DocError(
                f"{where}: only python and shell blocks run; use file=NAME or excerpt=PATH "
                f"for {lang!r}"
            )
        blocks.append(Block(path, nxt.map[0] + 2, lang, nxt.content, file, excerpt, flags))
    for k, b in enumerate(blocks):
        if b.file and not any(later.executes for later in blocks[k + 1 :]):
            raise DocError(f"{b.where}: no python or shell block after it uses {b.file!r}")
    return blocks


def _relative(path: str) -> bool:
    """A path inside the work directory: relative, without '..'."""
    return not Path(path).is_absolute() and ".." not in Path(path).parts


def _options(text: str, where: str) -> tuple[str | None, str | None, frozenset[str]]:
    file = excerpt = None
    flags = set()
    for opt in filter(None, (o.strip() for o in text.split(","))):
        key, sep, value = opt.partition("=")
        if key == "file" and sep and value and _relative(value):
            file = value
        elif key == "excerpt" and sep and value:
            excerpt = value
        elif not sep and key in FLAGS:
            flags.add(key)
        else:
            raise DocError(
                f"{where}: unknown runnable option {opt!r} (file=NAME, excerpt=PATH, llm, slow)"
            )
    if file and excerpt:
        raise DocError(f"{where}: a block is either a file or an excerpt")
    return file, excerpt, frozenset(flags)


# ---- links and anchors ------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    path: Path
    line: int
    target: str


def links(path: Path) -> list[Link]:
    """Inline links and images outside code, with the line of the block holding them."""
    found = []
    for tok in tokens(path):
        if tok.type != "inline" or tok.map is None:
            continue
        for child in tok.children or []:
            attr = {"link_open": "href", "image": "src"}.get(child.type)
            if attr and (target := child.attrGet(attr)):
                found.append(Link(path, tok.map[0] + 1, str(target)))
    return found


def anchors(path: Path) -> frozenset[str]:
    """Heading ids that both GitHub and MkDocs give this page (a link must work on both)."""
    return _anchors(path, path.stat().st_mtime_ns)


@cache
def _anchors(path: Path, mtime_ns: int) -> frozenset[str]:
    toks = tokens(path)
    github: list[str] = []
    mkdocs: list[str] = []
    for i, tok in enumerate(toks):
        if tok.type == "heading_open":
            text = "".join(c.content for c in toks[i + 1].children or [] if c.content)
            github.append(_github_slug(text))
            mkdocs.append(_mkdocs_slug(text))
    return frozenset(_numbered(github, "-")) & frozenset(_numbered(mkdocs, "_"))


def _github_slug(text: str) -> str:
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _mkdocs_slug(text: str) -> str:
    """Python-Markdown's ``toc`` slugify (the default MkDocs uses)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def _numbered(slugs: list[str], sep: str) -> list[str]:
    """A repeated heading gets ``-1``, ``-2``... on GitHub, ``_1``, ``_2``... on MkDocs."""
    seen: dict[str, int] = {}
    out = []
    for s in slugs:
        out.append(s if s not in seen else f"{s}{sep}{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out
