"""Chunking Markdown documents: by headings, sentences, tokens or recursively, with overlap."""

from __future__ import annotations

import bisect
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, model_validator

from prepflow.core.columns import Column
from prepflow.core.operator import GenerateOperator, Params
from prepflow.operators.knowledge._segment import (
    Span,
    fences,
    fit,
    heading_path,
    headings,
    pack,
    sections,
    sentences,
    token_counter,
    tokens,
)

CHUNK_TYPE = pa.struct(
    [
        ("chunk_id", pa.string()),
        ("chunk_index", pa.int32()),
        ("text", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("heading_path", pa.list_(pa.string())),
        ("page_start", pa.int32()),
        ("page_end", pa.int32()),
    ]
)


class MarkdownChunker(GenerateOperator):
    """Cuts each document into chunks, one output row per chunk, each an exact slice of it.

    ``method``: ``headings`` (a chunk never spans two sections; a long section is cut at blank
    lines, lines, sentences, then tokens), ``recursive`` (the same cuts, but consecutive small
    sections are packed together), ``sentences`` (whole sentences packed) or ``tokens`` (fixed
    windows). Sizes are counted in ``unit``: characters, or tokens (a word, a CJK character or a
    punctuation mark: Chinese is never split on whitespace). ``overlap`` repeats the end of a
    chunk at the start of the next. A code fence is cut only when it alone is too large.
    Writes ``chunk_id`` (``doc_id#index``), ``chunk_index``, ``chunk`` (the text), ``start`` and
    ``end`` (character offsets into ``markdown``), ``heading_path`` (enclosing headings) and
    ``page_start``/``page_end`` (null when the document has no pages).
    """

    domain = "knowledge"
    cpu_heavy = True
    inputs = (
        Column("markdown", "string", "the document as Markdown"),
        Column("doc_id", "string", "the document's id"),
        Column("pages", "list<struct>", "{page, start, end} spans", optional=True),
    )
    outputs = (
        Column("chunk_id", "string", "doc_id#index"),
        Column("chunk_index", "int", "0-based position in the document"),
        Column("chunk", "string", "the chunk's text: markdown[start:end]"),
        Column("start", "int", "character offset of the chunk in markdown"),
        Column("end", "int", "character offset just after the chunk"),
        Column("heading_path", "list<string>", "titles of the enclosing headings"),
        Column("page_start", "int", "page of the chunk's first character (null: no pages)"),
        Column("page_end", "int", "page of the chunk's last character (null: no pages)"),
    )

    class Params(Params):
        method: Literal["headings", "recursive", "sentences", "tokens"] = Field(
            "headings", description="where chunks may end"
        )
        size: int = Field(400, ge=1, description="largest chunk, in units")
        unit: Literal["tokens", "chars"] = Field(
            "tokens", description="tokens: words, CJK characters, punctuation; or characters"
        )
        overlap: int = Field(0, ge=0, description="units repeated from the previous chunk")
        min_size: int = Field(
            1, ge=1, description="chunks smaller than this (in units) are left out"
        )

        @model_validator(mode="after")
        def _overlap_below_size(self) -> MarkdownChunker.Params:
            if self.overlap >= self.size:
                raise ValueError(f"overlap ({self.overlap}) must be less than size ({self.size})")
            return self

    def process(self, batch: pa.Table) -> pa.Table:
        texts = batch.column(self.col("markdown")).to_pylist()
        ids = batch.column(self.col("doc_id")).to_pylist()
        pages_name = self.col("pages")
        pages = (
            batch.column(pages_name).to_pylist()
            if pages_name in batch.column_names
            else [None] * len(texts)
        )
        parents, rows = [], []
        for i, (text, doc_id, doc_pages) in enumerate(zip(texts, ids, pages, strict=True)):
            for k, row in enumerate(self.chunks(text or "", doc_id, doc_pages or [])):
                parents.append(i)
                rows.append({**row, "chunk_index": k, "chunk_id": f"{doc_id}#{k}"})
        out = batch.take(pa.array(parents, pa.int64()))
        columns = pa.array(rows, type=CHUNK_TYPE) if rows else None
        for field in CHUNK_TYPE:
            name = "chunk" if field.name == "text" else field.name
            values = columns.field(field.name) if columns is not None else pa.array([], field.type)
            target = self.col(name)
            if target in out.column_names:
                out = out.set_column(out.column_names.index(target), target, values)
            else:
                out = out.append_column(target, values)
        return out

    def chunks(self, text: str, doc_id: str, pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The chunk rows of one document (without ids)."""
        p = self.params
        size = _chars if p.unit == "chars" else token_counter(text)

        protected = fences(text)
        marks = headings(text)
        whole = [(0, len(text))] if text.strip() else []
        if p.method == "tokens":
            spans = pack(text, tokens(text, (0, len(text))), size, p.size, p.overlap)
        elif p.method == "sentences":
            units = [u for s in whole for u in sentences(text, s, protected)]
            units = [f for u in units for f in fit(text, u, size, p.size, protected)]
            spans = pack(text, units, size, p.size, p.overlap)
        elif p.method == "recursive":
            units = [
                f for g in sections(text, marks) for f in fit(text, g, size, p.size, protected)
            ]
            spans = pack(text, units, size, p.size, p.overlap)
        else:  # headings: packing stops at each heading
            spans = [
                span
                for g in sections(text, marks)
                for span in pack(
                    text, fit(text, g, size, p.size, protected), size, p.size, p.overlap
                )
            ]
        starts = [pg["start"] for pg in pages]
        rows = []
        for start, end in spans:
            if size((start, end)) < p.min_size:
                continue
            rows.append(
                {
                    "text": text[start:end],
                    "start": start,
                    "end": end,
                    "heading_path": heading_path(marks, start),
                    "page_start": _page(pages, starts, start),
                    "page_end": _page(pages, starts, end - 1),
                }
            )
        return rows


def _chars(span: Span) -> int:
    return span[1] - span[0]


def _page(pages: list[dict[str, Any]], starts: list[int], offset: int) -> int | None:
    if not pages:
        return None
    i = max(0, bisect.bisect_right(starts, offset) - 1)
    return pages[i]["page"]
