"""Cleaning converted documents: running headers and footers, hyphenation, control characters,
and an LLM cleaner whose edits are bounded and checked."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams, reply_text
from prepflow.core.operator import Kind, Params, RefineOperator
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.knowledge.convert import PAGES_TYPE

_DIGITS = re.compile(r"\d+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
# a word broken at a line end: "infor-\nmation" (lower-case on both sides, so "C-\nTerm" stays)
_HYPHENATED = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_SPACES = re.compile(r"[ \t]{2,}")


def _map_pages(
    markdown: str, pages: list[dict[str, Any]], fn: Callable[[str, int], str]
) -> tuple[str, list[dict[str, Any]]]:
    """Apply ``fn(page_text, page_index)`` to each page (or the whole text when there are no
    pages) and rebuild the Markdown and the page offsets."""
    if not pages:
        return fn(markdown, 0), []
    parts, out, at = [], [], 0
    for i, page in enumerate(pages):
        text = fn(markdown[page["start"] : page["end"]], i).strip("\n")
        if parts:
            at += 2
        parts.append(text)
        out.append({"page": page["page"], "start": at, "end": at + len(text)})
        at += len(text)
    return "\n\n".join(parts), out


class _DocumentRefiner(RefineOperator):
    """Rewrites ``markdown`` page by page and keeps ``pages`` in step with it."""

    abstract = True
    domain = "knowledge"
    cpu_heavy = True
    inputs = (
        Column("markdown", "string", "the document as Markdown"),
        Column("pages", "list<struct>", "{page, start, end} spans", optional=True),
    )
    outputs = (
        Column("markdown", "string", "the cleaned Markdown"),
        Column("pages", "list<struct>", "the page spans in the cleaned Markdown"),
    )

    def prepare(self, pages: list[list[str]]) -> Any:
        """Per-document state from its pages' lines, before any page is rewritten."""
        return None

    def clean(self, text: str, index: int, state: Any) -> str:
        raise NotImplementedError

    def process(self, batch: pa.Table) -> pa.Table:
        texts = batch.column(self.col("markdown")).to_pylist()
        name = self.col("pages")
        all_pages = (
            batch.column(name).to_pylist() if name in batch.column_names else [None] * len(texts)
        )
        new_texts, new_pages = [], []
        for text, pages in zip(texts, all_pages, strict=True):
            pages = pages or []
            if text is None:
                new_texts.append(None)
                new_pages.append(pages)
                continue
            lines = [text[p["start"] : p["end"]].split("\n") for p in pages] or [text.split("\n")]
            state = self.prepare(lines)
            md, spans = _map_pages(text, pages, lambda t, i, s=state: self.clean(t, i, s))
            new_texts.append(md)
            new_pages.append(spans)
        batch = batch.set_column(
            batch.column_names.index(self.col("markdown")),
            self.col("markdown"),
            pa.array(new_texts, pa.string()),
        )
        column = pa.array(new_pages, PAGES_TYPE)
        if name in batch.column_names:
            return batch.set_column(batch.column_names.index(name), name, column)
        return batch.append_column(name, column)


class RepeatedLineRemover(_DocumentRefiner):
    """Removes running headers and footers: lines repeated at the top or bottom of many pages.

    A line is a header or footer when, with its digits masked (page numbers change), it is one
    of the first or last ``edge_lines`` lines of at least ``min_share`` of the document's pages,
    and the document has at least ``min_pages`` pages. Documents without pages pass unchanged.
    """

    class Params(Params):
        edge_lines: int = Field(2, ge=1, description="lines at each page edge that may repeat")
        min_share: float = Field(
            0.5, gt=0, le=1, description="share of pages a line must edge to be removed"
        )
        min_pages: int = Field(2, ge=2, description="documents with fewer pages pass unchanged")

    def prepare(self, pages: list[list[str]]) -> set[str]:
        if len(pages) < self.params.min_pages:
            return set()
        counts: Counter[str] = Counter()
        for lines in pages:
            counts.update({_mask(line) for line in self._edges(lines) if line.strip()})
        need = self.params.min_share * len(pages)
        return {line for line, n in counts.items() if n >= need}

    def _edges(self, lines: list[str]) -> list[str]:
        k = self.params.edge_lines
        return lines[:k] + lines[-k:]

    def clean(self, text: str, index: int, state: set[str]) -> str:
        if not state:
            return text
        lines = text.split("\n")
        k = self.params.edge_lines
        keep = [
            line
            for i, line in enumerate(lines)
            if not ((i < k or i >= len(lines) - k) and _mask(line) in state)
        ]
        return "\n".join(keep)


def _mask(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split())).lower()


class TextNormalizer(_DocumentRefiner):
    """Joins words hyphenated at line ends, removes control and zero-width characters and
    collapses runs of spaces (outside code fences' indentation: only runs inside a line)."""

    def clean(self, text: str, index: int, state: Any) -> str:
        text = _CONTROL.sub("", text)
        text = _HYPHENATED.sub("", text)
        return "\n".join(
            line if line.startswith((" ", "\t")) else _SPACES.sub(" ", line)
            for line in text.split("\n")
        )


CLEAN_PROMPT = """\
Clean the following passage extracted from a document. Remove leftovers of the extraction \
(page headers and footers, broken line wraps, stray symbols, navigation text) and fix obvious \
character errors. Do not add information, do not summarize, do not translate: keep every \
sentence of the content as it is.

Passage:
{{ text }}

Reply with only the cleaned passage."""


def edit_ratio(before: str, after: str) -> float:
    """Share of the text that changed: 1 - difflib's similarity ratio of the two texts."""
    return 1.0 - difflib.SequenceMatcher(None, before, after, autojunk=False).ratio()


class LLMCleaner(LLMOperator):
    """Asks the model to clean a passage, and accepts only small edits.

    The reply may delete or rewrite but not grow the text by more than ``max_growth`` nor
    change more than ``max_edit_ratio`` of it (1 - difflib similarity); a reply over either
    bound is a failure record that gives the measured value and the bound, so a model that
    rewrites or invents is never taken silently. Use it on chunks (the check is quadratic in
    the text's length).
    """

    domain = "knowledge"
    kind = Kind.REFINE
    inputs = (Column("text", "string", "the passage to clean"),)
    outputs = (Column("text", "string", "the cleaned passage"),)
    template = PromptTemplate(CLEAN_PROMPT)

    class Params(LLMParams):
        max_edit_ratio: float = Field(
            0.3, gt=0, le=1, description="largest share of the passage the model may change"
        )
        max_growth: float = Field(
            0.05, ge=0, description="largest growth of the passage's length, as a share"
        )

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        before = row[self.col("text")]
        after = reply_text(response.text)
        growth = len(after) / max(1, len(before)) - 1
        if growth > self.params.max_growth:
            raise ValueError(
                f"max_growth: the reply is {growth:.0%} longer > {self.params.max_growth:.0%}"
            )
        ratio = edit_ratio(before, after)
        if ratio > self.params.max_edit_ratio:
            raise ValueError(f"max_edit_ratio: {ratio:.2f} > {self.params.max_edit_ratio:g}")
        return {"text": after}
