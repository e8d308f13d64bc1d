"""Each converter on real documents: exact excerpts of headings, tables, lists and Chinese text,
and a failure record (never a crash) for each kind of bad file."""

from __future__ import annotations

import pytest

from prepflow.operators.knowledge.convert import DocumentToMarkdown

from .conftest import DOCS, read_documents


def test_pdf_headings_from_the_outline_and_page_offsets(converted: dict) -> None:
    doc = converted["en/maint-guide-ch1.pdf"]
    md = doc["markdown"]
    assert "\n# Getting started The Right Way\n" in md
    assert "\n## 1.1 Social dynamics of Debian\n" in md
    assert "\n- We all are volunteers.\n" in md  # a bullet list
    assert [p["page"] for p in doc["pages"]] == [1, 2, 3]
    for p in doc["pages"]:  # offsets cut the Markdown into its pages
        assert md[p["start"] : p["end"]].strip() == md[p["start"] : p["end"]]
    page3 = doc["pages"][2]
    assert md[page3["start"] : page3["end"]].startswith(
        "Debian New Maintainers\u2019 Guide 3 / 57\n"
    )
    assert "\n## 1.2 Programs needed for development\n" in md[page3["start"] : page3["end"]]


def test_pdf_table_becomes_a_markdown_table_in_place(converted: dict) -> None:
    md = converted["zh/debian-reference-vim-table.pdf"]["markdown"]
    assert "| 模式 | 按键 | 操作 |\n|---|---|---|\n| 普通 | :help\\|only | 显示帮助文件 |" in md
    assert "| 普通 | :q! | 强制退出vim |" in md
    assert md.index("### 1.4.8 使用 vim") < md.index("| 模式 |") < md.index("Table 1.16")


def test_pdf_chinese_text(converted: dict) -> None:
    md = converted["zh/maint-guide-ch1.pdf"]["markdown"]
    assert "# 正确的起点" in md and "## 1.1 Debian 的社会驱动力" in md
    assert "大家都是志愿者。" in md


def test_pdf_two_columns_read_column_by_column(converted: dict) -> None:
    md = converted["en/multitoc-two-columns.pdf"]["markdown"]
    left, right = "4 Required packages 3", "5 The Implementation 3"
    assert md.index("1 Introduction 1") < md.index(left) < md.index(right)
    assert md.index(right) < md.index("5.6 Code from Version 1.00 5")
    assert "The number of columns can be configured" in md  # "num-ber" joined again


def test_html_keeps_structure_and_drops_navigation(converted: dict) -> None:
    doc = converted["en/start.html"]
    md = doc["markdown"]
    assert doc["title"] == "Chapter 1. Getting started The Right Way"
    assert md.startswith("# Chapter 1. Getting started The Right Way\n")
    assert "\n## 1.1. Social dynamics of Debian\n" in md
    assert "\n- We all are volunteers.\n" in md
    assert "Prev" not in md and "Table of Contents" not in md  # navigation and TOC pruned
    zh = converted["zh/start.html"]["markdown"]
    assert zh.startswith("# 第 1 章 正确的起点\n") and "## 1.1. Debian 的社会驱动力" in zh


def test_docx_and_epub(converted: dict) -> None:
    docx = converted["en/upload.docx"]["markdown"]
    assert "\n# Chapter 9. Uploading the package\n" in docx
    assert "\n## 9.1. Uploading to the Debian archive\n" in docx
    epub = converted["zh/upload.epub"]
    assert epub["title"] == "第 9 章 上传软件包"
    assert "## 9.1. 上传到 Debian 仓库" in epub["markdown"]
    assert "首先需要设置 **dupload** 的配置文件。" in epub["markdown"]
    last = epub["pages"][-1]
    assert epub["markdown"][last["start"] : last["end"]].startswith(
        "# 第 9 章 上传软件包\n\n本教程文档已被重写"
    )


def test_markdown_and_text_pass_through(converted: dict) -> None:
    readme = converted["en/README.md"]["markdown"]
    assert readme == (DOCS / "en" / "README.md").read_text().strip()
    assert converted["en/maint-guide.txt"]["markdown"].startswith("Debian New Maintainers")


def test_bad_files_become_failure_records_naming_the_file() -> None:
    result = DocumentToMarkdown().run_batch(read_documents(DOCS / "bad"))
    assert result.kept.num_rows == 0
    failures = {r["doc_id"]: (r["_error_type"], r["_error"]) for r in result.failed.to_pylist()}
    assert "bytes" not in result.failed.column_names
    path = str(DOCS / "bad")
    assert failures == {
        "empty.html": ("EmptyDocument", f"{path}/empty.html: the file is empty"),
        "encrypted.pdf": (
            "EncryptedDocument",
            f"{path}/encrypted.pdf: the PDF is encrypted: give its password (password=)",
        ),
        "notes.xyz": (
            "UnknownType",
            f"{path}/notes.xyz: no converter reads this file type; "
            "supported: docx, epub, html, markdown, pdf, text",
        ),
        "truncated.pdf": (
            "BrokenDocument",
            f"{path}/truncated.pdf: not a readable PDF: Failed to load document "
            "(PDFium: Data format error).",
        ),
    }


def test_an_encrypted_pdf_opens_with_its_password() -> None:
    table = read_documents(DOCS / "bad" / "encrypted.pdf")
    result = DocumentToMarkdown(password="secret").run_batch(table)
    assert result.n_failed == 0 and "4 Required packages 3" in result.kept["markdown"][0].as_py()


def test_a_scanned_pdf_names_the_ocr_extra(tmp_path) -> None:
    pdfium = pytest.importorskip("pypdfium2")
    # a real page rendered to an image and saved as an image-only PDF: no text layer
    source = pdfium.PdfDocument(DOCS / "en" / "multitoc-two-columns.pdf")
    image = source[0].render(scale=1).to_pil()
    scanned = tmp_path / "scanned.pdf"
    image.save(scanned, "PDF")
    result = DocumentToMarkdown().run_batch(read_documents(scanned))
    (failure,) = result.failed.to_pylist()
    assert failure["_error_type"] == "NoTextLayer"
    assert (
        "set ocr: true" in failure["_error"] and "pip install 'prepflow[ocr]'" in failure["_error"]
    )


def test_ocr_without_its_extra_says_how_to_install_it(tmp_path) -> None:
    pdfium = pytest.importorskip("pypdfium2")
    try:
        import pytesseract  # noqa: F401

        pytest.skip("pytesseract is installed: the missing-extra message cannot show")
    except ImportError:
        pass
    image = pdfium.PdfDocument(DOCS / "en" / "multitoc-two-columns.pdf")[0].render().to_pil()
    image.save(tmp_path / "scanned.pdf", "PDF")
    result = DocumentToMarkdown(ocr=True).run_batch(read_documents(tmp_path / "scanned.pdf"))
    (failure,) = result.failed.to_pylist()
    assert failure["_error_type"] == "MissingDependency"
    assert failure["_error"].endswith(
        "scanned.pdf: OCR needs the ocr extra and the tesseract program: pip install "
        "'prepflow[ocr]' and apt-get install tesseract-ocr (tesseract-ocr-chi-sim for Chinese)"
    )
