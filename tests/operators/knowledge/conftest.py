"""The real documents in tests/data/documents (built by scripts/build-test-documents.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from prepflow.data.readers import open_input

DOCS = Path(__file__).resolve().parents[2] / "data" / "documents"


def read_documents(path: Path | str) -> pa.Table:
    """The documents under ``path`` as the reader gives them, with lineage ids."""
    source = open_input(path, format="documents")
    table = pa.concat_tables(source.iter_batches(1000))
    return table.add_column(0, "_id", pa.array(range(table.num_rows), pa.int64()))


@pytest.fixture(scope="session")
def converted() -> dict[str, dict]:
    """Every good test document converted once: doc_id -> output row."""
    pytest.importorskip("pypdfium2")
    from prepflow.operators.knowledge.convert import DocumentToMarkdown

    result = DocumentToMarkdown().run_batch(read_documents(DOCS))
    return {r["doc_id"]: r for r in result.kept.to_pylist()}
