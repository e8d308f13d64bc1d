"""Document inputs: a directory, glob or list of files, one row per document.

A row holds the raw bytes and what the name says about them; converting them to Markdown is the
job of the knowledge operators (``prepflow.operators.knowledge``), so that a broken, encrypted or
unknown file becomes a failure record naming it, not a read error that stops the run. Rows:

* ``doc_id``: the path relative to the input's root (``guide/intro.pdf``), so two ``intro.pdf``
  in different folders never collide and the id does not change between runs or machines;
* ``path`` (as given), ``type`` (``pdf``, ``html``, ``docx``, ``epub``, ``markdown``, ``text``,
  or ``unknown``), ``size`` in bytes, ``sha256`` of the content, and ``bytes``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath

import pyarrow as pa

DOCUMENT_TYPES = {
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".docx": "docx",
    ".epub": "epub",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}
"""File extensions read as documents, and the type each one means."""

SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("path", pa.string()),
        ("type", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("bytes", pa.binary()),
    ]
)

_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
#: Types whose extension no data format uses: an input made only of them is read as documents
#: without ``format="documents"`` (``.txt`` and ``.rst`` need it said).
_SELF_EVIDENT = {"pdf", "html", "docx", "epub", "markdown"}


def document_type(path: str) -> str:
    """The document type named by ``path``'s extension (a compression suffix is looked through),
    or ``unknown``."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    stem, ext = posixpath.splitext(name)
    if ext in _COMPRESSED:
        ext = posixpath.splitext(stem)[1]
    return DOCUMENT_TYPES.get(ext, "unknown")


def named_format(path: str) -> str | None:
    """``"documents"`` when ``path``'s name alone says it is a document, else None."""
    return "documents" if document_type(path) in _SELF_EVIDENT else None


def document_root(paths: list[str]) -> str:
    """The folder that ``doc_id`` values are relative to: the deepest folder holding every path."""
    if not paths:
        return ""
    if len(paths) == 1:
        return posixpath.dirname(paths[0])
    return posixpath.commonpath(paths) if all(p.startswith("/") for p in paths) else _common(paths)


def _common(paths: list[str]) -> str:
    """``commonpath`` for URLs and relative paths (it refuses to mix absolute and relative)."""
    parts = [p.split("/")[:-1] for p in paths]
    prefix = []
    for level in zip(*parts, strict=False):
        if any(x != level[0] for x in level):
            break
        prefix.append(level[0])
    return "/".join(prefix)


def document_id(path: str, root: str) -> str:
    """``path`` relative to ``root``, with ``/`` separators."""
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1 :]
    return path.replace(os.sep, "/").lstrip("/")


def document_table(path: str, data: bytes, root: str) -> pa.Table:
    """The one-row table of the document at ``path`` whose content is ``data``."""
    return pa.Table.from_pylist(
        [
            {
                "doc_id": document_id(path, root),
                "path": path,
                "type": document_type(path),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": data,
            }
        ],
        schema=SCHEMA,
    )
