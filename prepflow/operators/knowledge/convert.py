"""Documents (PDF, HTML, DOCX, EPUB, Markdown, text) to Markdown that keeps their structure."""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column, Schema
from prepflow.core.operator import (
    GenerateOperator,
    Params,
    Requirements,
    Result,
    failure_rows,
)
from prepflow.operators.knowledge._convert import ConversionError, Options, convert

PAGES_TYPE = pa.list_(pa.struct([("page", pa.int32()), ("start", pa.int64()), ("end", pa.int64())]))


class DocumentToMarkdown(GenerateOperator):
    """Converts each document row (from a ``documents`` input) to Markdown with its structure.

    PDF with a text layer (PDFium; headings from the outline, tables as Markdown tables through
    pdfplumber, scanned pages through OCR when ``ocr`` is on), HTML (main content, boilerplate
    pruned), DOCX, EPUB, Markdown and plain text. Writes ``markdown``, ``title`` (null when the
    document names none) and ``pages``: for PDFs one ``{page, start, end}`` per page and for
    EPUBs one per chapter, as character offsets into ``markdown``. A file that cannot be
    converted (broken, encrypted, empty, of an unknown type, scanned without OCR) becomes a
    failure record whose message names the file and says why; the run goes on.
    """

    domain = "knowledge"
    cpu_heavy = True
    requires = Requirements(packages=("pypdfium2", "markdownify", "lxml"), extra="documents")
    inputs = (
        Column("bytes", "any", "the document's content (binary)"),
        Column("type", "string", "pdf, html, docx, epub, markdown, text or unknown"),
        Column("path", "string", "where the document was read from (named in failures)"),
    )
    outputs = (
        Column("markdown", "string", "the document as Markdown"),
        Column("title", "string", "the document's title, when it names one"),
        Column("pages", "list<struct>", "{page, start, end} character spans of pages/chapters"),
    )

    class Params(Params):
        pdf_tables: bool = Field(
            True, description="find tables on PDF pages and write them as Markdown tables"
        )
        min_table_lines: int = Field(
            3,
            ge=1,
            description="PDF pages drawing fewer thin horizontal or vertical rules than this "
            "are not searched for tables",
        )
        ocr: bool = Field(
            False, description="OCR PDF pages without a text layer (extra 'ocr' + tesseract)"
        )
        ocr_languages: str = Field("eng", description="tesseract languages, e.g. 'eng+chi_sim'")
        password: str | None = Field(None, description="password of encrypted PDFs")
        html_extractor: Literal["structure", "trafilatura"] = Field(
            "structure",
            description="structure: prune boilerplate, keep headings/tables/code (documentation); "
            "trafilatura: main-text extraction for noisy web articles",
        )
        keep_bytes: bool = Field(False, description="keep the raw 'bytes' column downstream")

    def output_schema(self, schema: Schema) -> Schema:
        out = super().output_schema(schema)
        if not self.params.keep_bytes:
            out.pop(self.col("bytes"), None)
        return out

    def run_batch(self, batch: pa.Table) -> Result:
        p = self.params
        options = Options(
            p.pdf_tables, p.min_table_lines, p.ocr, p.ocr_languages, p.password, p.html_extractor
        )
        datas = batch.column(self.col("bytes")).to_pylist()
        kinds = batch.column(self.col("type")).to_pylist()
        paths = batch.column(self.col("path")).to_pylist()
        done: list[int] = []
        values: dict[str, list[Any]] = {"markdown": [], "title": [], "pages": []}
        failed: list[int] = []
        errors: list[tuple[str, str]] = []
        for i, (data, kind, path) in enumerate(zip(datas, kinds, paths, strict=True)):
            try:
                out = convert(kind, data or b"", options)
            except ConversionError as e:
                failed.append(i)
                errors.append((e.error_type, f"{path}: {e}"))
                continue
            except Exception as e:  # a library's own crash on a malformed file
                failed.append(i)
                errors.append(("BrokenDocument", f"{path}: {type(e).__name__}: {e}"))
                continue
            done.append(i)
            values["markdown"].append(out.markdown)
            values["title"].append(out.title)
            values["pages"].append([{"page": n, "start": s, "end": e} for n, s, e in out.pages])
        kept = batch.take(pa.array(done, pa.int64()))
        types = {"markdown": pa.string(), "title": pa.string(), "pages": PAGES_TYPE}
        for name, column in values.items():
            kept = _put(kept, self.col(name), pa.array(column, types[name]))
        failures = None
        if failed:
            failures = failure_rows(
                batch.take(pa.array(failed, pa.int64())),
                [k for k, _ in errors],
                [m for _, m in errors],
            )
        if not p.keep_bytes:
            kept = kept.drop_columns([self.col("bytes")])
            if failures is not None:  # the failure record names the file; its bytes stay out
                failures = failures.drop_columns([self.col("bytes")])
        return Result(kept=kept, failed=failures)


def _put(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)
