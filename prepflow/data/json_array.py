"""``.json`` reader: a top-level array of objects, streamed without holding the file.

The array is cut into elements as the file is read, so memory holds one block plus one element.
Fast path: at an element boundary, everything up to the last ``},`` in the buffer goes to orjson
as one array; a cut that falls inside a string or a nested value cannot parse, so when it parses
to objects only, its elements are exactly the file's next elements. Otherwise (a bad element, an
unlucky ``},`` inside a string) the buffer is split token by token, scanning only strings and
brackets, which names the index and line of each bad element. Elements are typed like JSONL rows
(``prepflow.data.schema.rows_to_table``).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import IO, Any

import orjson
import pyarrow as pa

from prepflow.core.errors import InputError
from prepflow.data.jsonl import BOM, MAX_DEPTH, json_depth, parse_object, read_jsonl
from prepflow.data.records import OnBad, report
from prepflow.data.schema import rows_to_table

ROWS_PER_TABLE = 8192

# A complete string, or a lone quote (a string cut by the buffer end), or structure.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{},]', re.S)
_OPEN = (ord("{"), ord("["))
_CLOSERS = {ord("]"): ord("["), ord("}"): ord("{")}


def read_json(
    f: IO[bytes], path: str, on_bad: OnBad | None, block_bytes: int
) -> Iterator[pa.Table]:
    """Stream a ``.json`` file: a top-level array of objects, or JSON Lines when it starts with
    ``{`` (what ``datasets``' and pandas' ``to_json(lines=True)`` write under a .json name)."""
    head = f.read(block_bytes).removeprefix(BOM)
    first = head.lstrip()[:1]
    if first == b"{":
        yield from read_jsonl(_Prefixed(head, f), path, on_bad, block_bytes)
    elif first == b"[":
        yield from _read_array(_Scanner(head, f, block_bytes), path, on_bad)
    elif first:
        line = head[: len(head) - len(head.lstrip())].count(b"\n") + 1
        raise InputError("expected a JSON array of objects or JSON Lines", path=path, line=line)


def _read_array(scanner: _Scanner, path: str, on_bad: OnBad | None) -> Iterator[pa.Table]:
    rows: list[dict[str, Any]] = []
    try:
        for index, (line, raw, value) in enumerate(scanner.elements()):
            if value is None:
                value, reason = parse_object(raw) if raw else (None, "empty element (stray comma)")
                if reason:
                    report(on_bad, path, line, f"array index {index}: {reason}", raw)
                    continue
            rows.append(value)
            if len(rows) == ROWS_PER_TABLE:
                yield rows_to_table(rows)
                rows = []
    except _Broken as e:
        report(on_bad, path, e.line, e.reason, e.raw)
    if rows:
        yield rows_to_table(rows)


class _Broken(Exception):
    """The array's structure is broken at ``line``: no later element can be located."""

    def __init__(self, line: int, raw: bytes, reason: str):
        super().__init__(reason)
        self.line, self.raw, self.reason = line, raw, reason


Element = tuple[int, bytes, Any]
"""(line, raw bytes, None) from the token scan, or (line of its batch, b"", object) from the
fast path, whose elements are known good."""


class _Scanner:
    """Splits the top-level array that ``head`` opens into its elements, reading ``f`` on demand."""

    def __init__(self, head: bytes, f: IO[bytes], block_bytes: int):
        self._f, self._block_bytes = f, block_bytes
        self._buf = head
        self._start = self._pos = head.index(b"[") + 1  # current element's start; scan position
        self._stack: list[int] = []  # brackets open inside the current element
        self._count = 0  # elements split off so far
        self._line, self._counted = 1, 0  # line number at buf[counted]
        self._tried = -1  # the last fast-path cut tried in this buffer

    def elements(self) -> Iterator[Element]:
        while True:
            if self._pos == self._start:
                yield from self._fast()
            state = yield from self._scan()
            if state == "closed":
                return
            if state == "more":
                self._refill()

    def _fast(self) -> Iterator[Element]:
        cut = self._buf.rfind(b"},", self._start)
        if cut <= self._tried:  # none here, or this one failed already
            return
        self._tried = cut
        try:
            values = orjson.loads(b"[" + self._buf[self._start : cut + 1] + b"]")
        except orjson.JSONDecodeError:
            return
        if not all(type(v) is dict and json_depth(v) <= MAX_DEPTH + 1 for v in values):
            return  # the token scan will name the line of each non-object or too deep one
        line = self._line_at(self._start)
        for value in values:
            yield line, b"", value
        self._count += len(values)
        self._start = self._pos = cut + 2

    def _scan(self) -> Generator[Element, None, str]:
        """Split elements token by token; return "boundary" (worth a fast try), "more" or "closed"."""
        buf, stack = self._buf, self._stack
        for m in _TOKENS.finditer(buf, self._pos):
            tok = buf[m.start()]
            if m.end() - m.start() > 1:  # a complete string
                continue
            if tok == ord('"'):  # a string cut by the buffer end
                self._pos = m.start()
                return "more"
            if tok in _OPEN:
                stack.append(tok)
            elif stack and tok in _CLOSERS:
                if stack.pop() != _CLOSERS[tok]:
                    raw = buf[self._start : m.end()].strip()
                    raise _Broken(self._line_at(m.start()), raw, f"mismatched {chr(tok)!r}")
            elif tok == ord(","):
                if not stack:
                    yield self._element(m.start())
                    self._start = self._pos = m.end()
                    self._count += 1
                    if buf.rfind(b"},", m.end()) > self._tried:
                        return "boundary"
            elif tok == ord("]"):  # closes the top-level array
                if self._count or buf[self._start : m.start()].strip():  # else: it is []
                    yield self._element(m.start())
                self._expect_only_whitespace(m.end())
                return "closed"
            else:
                raw = buf[self._start : m.end()].strip()
                raise _Broken(self._line_at(m.start()), raw, "unexpected '}'")
        self._pos = len(buf)
        return "more"

    def _refill(self) -> None:
        """Forget what is before the current element and append the next block."""
        chunk = self._f.read(self._block_bytes)
        if not chunk:
            cut = "inside a string" if self._pos < len(self._buf) else "before the closing ']'"
            line, raw = self._element(len(self._buf))[:2]
            raise _Broken(line, raw, f"truncated JSON array: the file ends {cut}")
        self._line_at(self._start)
        shift = self._start
        self._buf = self._buf[shift:] + chunk
        self._start, self._pos, self._counted = 0, self._pos - shift, 0
        self._tried = max(self._tried - shift, -1)

    def _line_at(self, position: int) -> int:
        self._line += self._buf.count(b"\n", self._counted, position)
        self._counted = position
        return self._line

    def _element(self, end: int) -> Element:
        """The current element up to ``end``, with the line of its first character."""
        raw = self._buf[self._start : end]
        return self._line_at(self._start + len(raw) - len(raw.lstrip())), raw.strip(), None

    def _expect_only_whitespace(self, after: int) -> None:
        tail, line = self._buf[after:], self._line_at(after)
        while True:
            if tail.strip():
                line += tail[: len(tail) - len(tail.lstrip())].count(b"\n")
                raise _Broken(line, tail.strip()[:200], "unexpected data after the closing ']'")
            line += tail.count(b"\n")
            if not (tail := self._f.read(self._block_bytes)):
                return


class _Prefixed:
    """A binary reader that yields ``head`` before the rest of ``f``."""

    def __init__(self, head: bytes, f: IO[bytes]):
        self._head, self._f = head, f

    def read(self, size: int) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._f.read(size)
