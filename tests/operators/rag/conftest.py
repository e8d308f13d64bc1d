"""Chunks of the real test documents, and a search index over them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tests.operators.knowledge.conftest import DOCS, read_documents


@pytest.fixture(scope="session")
def chunks() -> pa.Table:
    pytest.importorskip("pypdfium2")
    from prepflow.operators.knowledge.chunk import MarkdownChunker
    from prepflow.operators.knowledge.clean import RepeatedLineRemover
    from prepflow.operators.knowledge.convert import DocumentToMarkdown

    docs = DocumentToMarkdown().run_batch(read_documents(DOCS)).kept  # bad/ files fail
    docs = RepeatedLineRemover().run_batch(docs).kept
    out = MarkdownChunker(method="headings", size=200).run_batch(docs).kept
    return out.set_column(0, "_id", pa.array(range(out.num_rows), pa.int64()))


@pytest.fixture(scope="session")
def index_dir(chunks: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("bm25s")
    from prepflow.operators.rag.index import BuildSearchIndex

    path = tmp_path_factory.mktemp("rag") / "index"
    op = BuildSearchIndex(index_dir=str(path))
    op.fit(pa.Table.from_batches([b]) for b in chunks.to_batches(max_chunksize=50))
    return path
