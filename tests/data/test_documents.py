"""Document inputs: one row per file, ids relative to the root, bytes as found."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from prepflow.core.errors import ConfigError
from prepflow.data.documents import document_type
from prepflow.data.readers import open_input
from prepflow.data.writers import write_output

DOCS = Path(__file__).resolve().parents[1] / "data" / "documents"


def rows(source) -> list[dict]:
    return [r for b in source.iter_batches(4) for r in b.to_pylist()]


def test_a_directory_of_documents_is_read_without_naming_the_format() -> None:
    source = open_input(DOCS / "zh")
    assert source.format == "documents" and source.estimate_rows() == 4
    got = rows(source)
    assert [r["doc_id"] for r in got] == [
        "debian-reference-vim-table.pdf",
        "maint-guide-ch1.pdf",
        "start.html",
        "upload.epub",
    ]
    html = next(r for r in got if r["doc_id"] == "start.html")
    data = (DOCS / "zh" / "start.html").read_bytes()
    assert html["bytes"] == data and html["size"] == len(data)
    assert html["sha256"] == hashlib.sha256(data).hexdigest() and html["type"] == "html"


def test_identical_names_in_different_folders_keep_distinct_ids() -> None:
    got = rows(open_input(DOCS, format="documents"))
    ids = [r["doc_id"] for r in got]
    assert "en/start.html" in ids and "zh/start.html" in ids
    assert "en/maint-guide-ch1.pdf" in ids and "zh/maint-guide-ch1.pdf" in ids
    assert len(set(ids)) == len(ids) == len(list(DOCS.rglob("*.*")))
    assert {r["type"] for r in got} == {
        "pdf",
        "html",
        "docx",
        "epub",
        "markdown",
        "text",
        "unknown",
    }


def test_one_file_and_a_glob(tmp_path: Path) -> None:
    (row,) = rows(open_input(DOCS / "en" / "README.md"))
    assert row["doc_id"] == "README.md" and row["type"] == "markdown"
    got = rows(open_input(str(DOCS / "*" / "*.pdf")))
    assert [r["doc_id"] for r in got] == [
        "bad/encrypted.pdf",
        "bad/truncated.pdf",
        "en/maint-guide-ch1.pdf",
        "en/multitoc-two-columns.pdf",
        "zh/debian-reference-vim-table.pdf",
        "zh/maint-guide-ch1.pdf",
    ]


def test_text_files_are_lines_unless_named_documents_which_are_never_written(
    tmp_path: Path,
) -> None:
    assert open_input(DOCS / "en" / "maint-guide.txt").format == "txt"  # a row per line
    (row,) = rows(open_input(DOCS / "en" / "maint-guide.txt", format="documents"))
    assert row["type"] == "text"
    with pytest.raises(ConfigError, match="'documents' is an input format only"):
        write_output(iter([]), tmp_path / "out.pdf", format="documents")


def test_document_types_look_through_compression() -> None:
    assert document_type("/usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz") == "pdf"
    assert document_type("a/B.HTM") == "html" and document_type("x.tar") == "unknown"


def test_stray_files_beside_documents_are_read_as_documents() -> None:
    source = open_input(DOCS / "bad")  # encrypted.pdf, truncated.pdf, empty.html, notes.xyz
    assert source.format == "documents"
    assert {r["doc_id"]: r["type"] for r in rows(source)}["notes.xyz"] == "unknown"
