"""Plain text files: one row per non-blank line, in a ``text`` column (``.txt``, input only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import pyarrow as pa

from prepflow.data.jsonl import line_blocks
from prepflow.data.records import OnBad, report


def read_lines(
    f: IO[bytes], path: str, on_bad: OnBad | None, block_bytes: int
) -> Iterator[pa.Table]:
    """Stream the non-blank lines of a text file (line endings stripped) as tables."""
    for first_line, block in line_blocks(f, block_bytes):
        texts = []
        for number, raw in enumerate(block.split(b"\n"), first_line):
            line = raw.removesuffix(b"\r")
            if not line.strip():
                continue
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError as e:
                report(on_bad, path, number, f"not UTF-8 ({e.reason})", line)
        if texts:
            yield pa.table({"text": pa.array(texts, pa.string())})
