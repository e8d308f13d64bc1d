"""Helpers for text operator tests."""

import pyarrow as pa
import pytest


def run_op(op, texts, **columns):
    """Run a bound operator over a batch with an ``_id`` and a ``text`` column."""
    table = pa.table(
        {
            "_id": pa.array(range(len(texts)), pa.int64()),
            "text": pa.array(texts, pa.string()),
            **columns,
        }
    )
    return op.bind({}).run_batch(table)


@pytest.fixture
def run():
    return run_op
