"""Internal links of README.md and docs/ lead somewhere: the file exists, the anchor is a heading
of that page (with the same id on GitHub and on the MkDocs site), and pages of the site link only
inside docs/ (MkDocs cannot serve anything else)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.docs.mdscan import DOCS, REPO, Link, anchors, documents, links, shown


def broken(link: Link, docs: Path = DOCS) -> str | None:
    """Why ``link`` is broken, or None (``docs``: the folder the site is built from)."""
    url = urlsplit(link.target)
    if url.scheme or link.target.startswith("//"):
        return None  # external: not checked offline
    target = link.path if not url.path else (link.path.parent / unquote(url.path)).resolve()
    if not target.exists():
        return f"no such file {shown(target)}"
    if link.path.is_relative_to(docs) and not target.is_relative_to(docs):
        return f"{shown(target)} is outside docs/: the site cannot link to it"
    if url.fragment:
        if target.suffix != ".md":
            return f"anchor #{url.fragment} on a file that is not Markdown"
        if url.fragment not in anchors(target):
            return f"{shown(target)} has no heading #{url.fragment}"
    return None


def test_internal_links_resolve() -> None:
    problems = [
        f"{shown(link.path)}:{link.line}: {link.target}: {why}"
        for doc in documents()
        for link in links(doc)
        if (why := broken(link))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("other.md", None),
        ("other.md#first-heading", None),
        ("#a-heading-here", None),
        ("https://example.com/x.md#nothing", None),
        ("missing.md", "no such file"),
        ("other.md#nope", "has no heading #nope"),
        ("other.md#dataflow-data-juicer", "has no heading"),  # GitHub and MkDocs ids differ
        ("other.md#repeated-1", "has no heading"),  # GitHub: -1, MkDocs: _1
        ("../outside.txt", "outside docs/"),
    ],
)
def test_link_checker_finds_what_breaks(tmp_path: Path, target: str, why: str | None) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (docs / "other.md").write_text(
        "# First heading\n\n## DataFlow / Data-Juicer\n\n## Repeated\n\n## Repeated\n"
    )
    page = docs / "page.md"
    page.write_text(f"# A heading here\n\nSee [it]({target}).\n")
    (link,) = links(page)
    assert link.line == 3
    result = broken(link, docs)
    assert (result is None) if why is None else (why in (result or ""))


def test_links_in_code_are_not_links(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("`[a](nowhere.md)`\n\n```\n[b](nowhere.md)\n```\n\n[c](there.md)\n")
    assert [link.target for link in links(page)] == ["there.md"]


def test_readme_links_into_docs() -> None:
    assert any((REPO / link.target).is_relative_to(DOCS) for link in links(REPO / "README.md")), (
        "README.md should point readers to docs/"
    )
