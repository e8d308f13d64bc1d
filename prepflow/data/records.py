"""Malformed input records: one place decides between stopping the run and quarantining."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prepflow.core.errors import InputError


@dataclass(frozen=True)
class BadRecord:
    """An input record that could not be read; the engine quarantines it with this context."""

    path: str
    line: int  # 1-based line where the record starts
    reason: str
    raw: bytes  # the offending line or record, as found in the file


OnBad = Callable[[BadRecord], None]


def report(on_bad: OnBad | None, path: str, line: int, reason: str, raw: bytes) -> None:
    """Raise InputError (``on_bad`` is None) or hand the record to ``on_bad`` so reading goes on."""
    if on_bad is None:
        raise InputError(reason, path=path, line=line)
    on_bad(BadRecord(path, line, reason, raw))
