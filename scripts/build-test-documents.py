"""Rebuild the real test documents in tests/data/documents from Debian packages (run once, as root).

    .venv/bin/pip install pypdf cryptography   # not prepflow dependencies
    .venv/bin/python scripts/build-test-documents.py

Downloads the packages with ``apt-get download`` (no install), unpacks them into a temporary
folder and copies a few small excerpts here: pages cut from the PDFs the packages ship (with
their outline), HTML chapters, a Markdown README and the start of a plain-text manual; DOCX and
EPUB versions of a real HTML chapter are made with pandoc (installed with apt-get if missing). It also writes the
broken inputs the tests expect to fail (a truncated PDF, an encrypted one, an empty file, a file
of an unknown type). The results are committed; the tests never run this script.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

from pypdf import PdfReader, PdfWriter

HERE = Path(__file__).resolve().parents[1] / "tests" / "data" / "documents"
PACKAGES = [
    "maint-guide",  # Debian New Maintainers' Guide: PDF, HTML, text (English)
    "maint-guide-zh-cn",  # the same in Simplified Chinese
    "debian-reference-zh-cn",  # Debian Reference (Chinese): a PDF page with a table
    "texlive-latex-recommended-doc",  # multitoc.pdf: a page set in two columns
    "python3-yaml",  # a README.md
]
# (package file, first page, last page (1-based, inclusive), output)
PDF_PAGES = [
    ("usr/share/doc/maint-guide/maint-guide.en.pdf", 7, 9, "en/maint-guide-ch1.pdf"),
    ("usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.pdf", 7, 8, "zh/maint-guide-ch1.pdf"),
    (
        "usr/share/debian-reference/debian-reference.zh-cn.pdf",
        49,
        49,
        "zh/debian-reference-vim-table.pdf",
    ),
    ("usr/share/doc/texlive-doc/latex/ms/multitoc.pdf", 1, 1, "en/multitoc-two-columns.pdf"),
]
HTML = [
    ("usr/share/doc/maint-guide/html/start.en.html", "en/start.html"),
    ("usr/share/doc/maint-guide-zh-cn/html/start.zh-cn.html", "zh/start.html"),
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, check=True)
        for deb in Path(tmp).glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        for sub in ("en", "zh", "bad"):
            (HERE / sub).mkdir(exist_ok=True)
        for source, first, last, out in PDF_PAGES:
            cut_pdf(root / source, first, last, HERE / out)
        for source, out in HTML:
            shutil.copyfile(root / source, HERE / out)
        shutil.copyfile(root / "usr/share/doc/python3-yaml/README.md", HERE / "en/README.md")
        text = gzip.decompress(
            (root / "usr/share/doc/maint-guide/maint-guide.en.txt.gz").read_bytes()
        )
        (HERE / "en/maint-guide.txt").write_bytes(b"\n".join(text.split(b"\n")[:120]) + b"\n")
        pandoc(root, "usr/share/doc/maint-guide/html/upload.en.html", HERE / "en/upload.docx")
        pandoc(
            root, "usr/share/doc/maint-guide-zh-cn/html/upload.zh-cn.html", HERE / "zh/upload.epub"
        )
    write_bad_inputs()


def cut_pdf(source: Path, first: int, last: int, out: Path) -> None:
    """Pages ``first..last`` of ``source`` with the outline entries that point into them."""
    writer = PdfWriter()
    writer.append(PdfReader(source), pages=(first - 1, last), import_outline=True)
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    with out.open("wb") as f:
        writer.write(f)


def pandoc(root: Path, html: str, out: Path) -> None:
    if shutil.which("pandoc") is None:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "pandoc"], check=True
        )
    subprocess.run(
        [
            "pandoc",
            f"--resource-path={(root / html).parent}",
            "-f",
            "html",
            str(root / html),
            "-o",
            str(out),
        ],
        check=True,
    )


def write_bad_inputs() -> None:
    good = (HERE / "en/maint-guide-ch1.pdf").read_bytes()
    (HERE / "bad/truncated.pdf").write_bytes(good[: len(good) // 3])
    writer = PdfWriter(clone_from=HERE / "en/multitoc-two-columns.pdf")
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    with (HERE / "bad/encrypted.pdf").open("wb") as f:
        writer.write(f)
    (HERE / "bad/empty.html").write_bytes(b"")
    (HERE / "bad/notes.xyz").write_bytes(b"a file of a type no converter reads\n")


if __name__ == "__main__":
    main()
