"""Document conversion and chunking speed, side by side with the alternatives measured.

PDFs: whole Debian manuals (the full files the test excerpts were cut from), read page by page
with pypdfium2 (ours, alone and with the table pass), pypdf, pdfplumber and markitdown (pdfminer).
HTML: every HTML page of the same packages, with ours (pruned markdownify), trafilatura and
markitdown; besides speed it counts the headings and table rows each keeps, since a converter
that drops headings breaks heading-based chunking. Chunking: MB/s of MarkdownChunker over the
converted Markdown, per method.

    .venv/bin/python benchmarks/documents_converters.py [--debs DIR]

pypdf and markitdown are not prepflow dependencies: install them to include their rows.
``--debs`` is a folder where the packages are downloaded and unpacked (apt-get download, no
install; created when missing).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import time
from pathlib import Path

import pyarrow as pa

PACKAGES = ["maint-guide", "maint-guide-zh-cn", "debian-reference-zh-cn", "developers-reference"]


def unpack(debs: Path) -> Path:
    root = debs / "root"
    if not root.exists():
        debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
        for deb in debs.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def timed(fn, items) -> tuple[float, list]:
    t = time.perf_counter()
    out = [fn(x) for x in items]
    return time.perf_counter() - t, out


def pdf_benchmarks(pdfs: list[bytes]) -> None:
    import pdfplumber
    import pypdfium2 as pdfium

    from prepflow.operators.knowledge._convert import Options, convert

    pages = sum(len(pdfium.PdfDocument(d)) for d in pdfs)

    def with_pdfium(data: bytes) -> int:
        doc = pdfium.PdfDocument(data)
        n = sum(len(doc[i].get_textpage().get_text_bounded()) for i in range(len(doc)))
        doc.close()
        return n

    def with_pypdf(data: bytes) -> int:
        import pypdf  # not a prepflow dependency: pip install pypdf to compare

        return sum(len(p.extract_text() or "") for p in pypdf.PdfReader(io.BytesIO(data)).pages)

    def with_pdfplumber(data: bytes) -> int:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            return sum(len(p.extract_text() or "") for p in pdf.pages)

    def with_markitdown(data: bytes) -> int:
        from markitdown import MarkItDown

        return len(MarkItDown().convert_stream(io.BytesIO(data), file_extension=".pdf").markdown)

    runs = {
        "prepflow DocumentToMarkdown (pypdfium2 + outline, no tables)": lambda d: len(
            convert("pdf", d, Options(pdf_tables=False)).markdown
        ),
        "prepflow DocumentToMarkdown (+ pdfplumber tables, default)": lambda d: len(
            convert("pdf", d, Options()).markdown
        ),
        "pypdfium2 text only": with_pdfium,
        "pypdf": with_pypdf,
        "pdfplumber": with_pdfplumber,
        "markitdown (pdfminer)": with_markitdown,
    }
    print(f"\nPDF: {len(pdfs)} files, {pages} pages")
    print("| converter | seconds | pages/s |\n|---|---:|---:|")
    for name, fn in runs.items():
        try:
            seconds, _ = timed(fn, pdfs)
        except ImportError as e:
            print(f"| {name} | not installed ({e.name}) | |")
            continue
        print(f"| {name} | {seconds:.2f} | {pages / seconds:.1f} |")


def html_benchmarks(pages: list[bytes]) -> None:
    import trafilatura

    from prepflow.operators.knowledge._convert import Options, html_to_markdown

    def ours(data: bytes) -> str:
        return html_to_markdown(data, Options()).markdown

    def with_trafilatura(data: bytes) -> str:
        return (
            trafilatura.extract(
                data.decode("utf-8", "replace"),
                output_format="markdown",
                include_tables=True,
                include_formatting=True,
            )
            or ""
        )

    def with_markitdown(data: bytes) -> str:
        from markitdown import MarkItDown

        return MarkItDown().convert_stream(io.BytesIO(data), file_extension=".html").markdown

    mb = sum(map(len, pages)) / 1e6
    print(f"\nHTML: {len(pages)} pages, {mb:.1f} MB")
    print(
        "| converter | seconds | pages/s | headings kept | table rows kept |\n|---|---:|---:|---:|---:|"
    )
    for name, fn in {
        "prepflow (pruned markdownify)": ours,
        "trafilatura": with_trafilatura,
        "markitdown": with_markitdown,
    }.items():
        try:
            seconds, outs = timed(fn, pages)
        except ImportError as e:
            print(f"| {name} | not installed ({e.name}) | | | |")
            continue
        lines = [line for md in outs for line in md.splitlines()]
        heads = sum(1 for line in lines if line.startswith("#"))
        rows = sum(1 for line in lines if line.startswith("|"))
        print(f"| {name} | {seconds:.2f} | {len(pages) / seconds:.1f} | {heads} | {rows} |")


def chunk_benchmarks(markdowns: list[str]) -> None:
    from prepflow.operators.knowledge.chunk import MarkdownChunker

    table = pa.table(
        {
            "_id": list(range(len(markdowns))),
            "doc_id": [f"d{i}" for i in range(len(markdowns))],
            "markdown": markdowns,
        }
    )
    mb = sum(len(m.encode()) for m in markdowns) / 1e6
    print(f"\nChunking: {len(markdowns)} documents, {mb:.1f} MB of Markdown")
    print("| method | unit | chunks | seconds | MB/s |\n|---|---|---:|---:|---:|")
    for method in ("headings", "recursive", "sentences", "tokens"):
        for unit in ("tokens", "chars"):
            op = MarkdownChunker(method=method, size=300, unit=unit, overlap=30)
            t = time.perf_counter()
            out = op.run_batch(table).kept
            seconds = time.perf_counter() - t
            print(f"| {method} | {unit} | {out.num_rows} | {seconds:.2f} | {mb / seconds:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debs", type=Path, default=Path("/tmp/prepflow-bench-debs"))
    args = parser.parse_args()
    root = unpack(args.debs)
    pdfs = [p.read_bytes() for p in sorted(root.rglob("*.pdf"))]
    html = [p.read_bytes() for p in sorted(root.rglob("*.html"))]
    pdf_benchmarks(pdfs)
    html_benchmarks(html)
    from prepflow.operators.knowledge._convert import Options, convert

    markdowns = [convert("pdf", d, Options(pdf_tables=False)).markdown for d in pdfs]
    markdowns += [convert("html", d, Options()).markdown for d in html]
    chunk_benchmarks(markdowns)


if __name__ == "__main__":
    main()
