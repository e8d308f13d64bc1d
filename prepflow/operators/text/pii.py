"""PII redaction: replace e-mails, phone numbers, IP addresses, card and national-ID numbers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import Params, RefineOperator
from prepflow.core.tables import fill_null, from_numpy, set_column, strings, to_numpy

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_HEX = r"[0-9A-Fa-f]{1,4}"


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    digits = [int(c) for c in number if c.isdigit()]
    total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return total % 10 == 0


def cn_id_ok(number: str) -> bool:
    """The ISO 7064 MOD 11-2 check character of an 18-character Chinese resident ID."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


@dataclass(frozen=True)
class PiiKind:
    """A kind of PII: its RE2 pattern (also valid Python ``re`` syntax) and optional checksum."""

    name: str
    pattern: str
    valid: Callable[[str], bool] | None = None


# Applied in this order: an e-mail's digits are never read as a phone, an ID never as a card.
KINDS: dict[str, PiiKind] = {
    k.name: k
    for k in (
        PiiKind("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        PiiKind(
            "national_id",
            r"\b[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
            r"\d{3}[\dXx]\b|\b\d{3}-\d{2}-\d{4}\b",
            lambda s: "-" in s or cn_id_ok(s),
        ),
        PiiKind("credit_card", r"\b(?:\d[ -]?){12,18}\d\b", luhn_ok),
        PiiKind(
            "ip",
            rf"\b(?:{_OCTET}\.){{3}}{_OCTET}\b|\b(?:{_HEX}:){{7}}{_HEX}\b"
            rf"|\b(?:{_HEX}:){{2,6}}:(?:{_HEX}(?::{_HEX}){{0,5}})?",
        ),
        PiiKind(
            "phone",
            r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}\b"
            r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}\b|\b\d{3}[.-]\d{3}[.-]\d{4}\b"
            r"|\b1[3-9]\d{9}\b|\b0\d{2,3}-\d{7,8}\b",
        ),
    )
}
Kind = Literal["email", "national_id", "credit_card", "ip", "phone"]


class PiiRedactor(RefineOperator):
    """Redact personal data and count, per document and kind, what was redacted.

    Kinds: e-mail addresses; national IDs (Chinese resident ID with a valid check character,
    US SSN written ddd-dd-dddd); payment card numbers (13-19 digits, spaces or dashes allowed,
    Luhn-valid); IPv4 and IPv6 addresses (full, or "::"-compressed with two groups before the
    "::"); phone numbers (with a "+" country code, North-American "(555) 123-4567" or
    "555-123-4567", Chinese mobile and landline numbers). Each match becomes a placeholder such
    as ``<EMAIL>``; ``pii_counts`` holds one count per enabled kind.
    """

    domain = "text"
    cpu_heavy = True
    inputs = (Column("text", "string", "Text to redact."),)
    outputs = (
        Column("text", "string", "The text with PII replaced by placeholders."),
        Column("pii_counts", "struct", "Per enabled kind, how many matches were redacted."),
    )

    class Params(Params):
        kinds: list[Kind] = Field(list(KINDS), min_length=1, description="Kinds of PII to redact.")
        placeholder: str = Field(
            "<{KIND}>",
            description="Replacement; {KIND} is the kind in capitals, {kind} in lower case.",
        )

    def process(self, batch: pa.Table) -> pa.Table:
        name = self.col("text")
        column = batch.column(name)
        texts = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        counts = {}
        for kind in (k for k in KINDS.values() if k.name in self.params.kinds):
            token = self.params.placeholder.format(KIND=kind.name.upper(), kind=kind.name)
            texts, counts[kind.name] = _redact(texts, kind, token)
        batch = set_column(batch, name, texts)
        struct = pa.StructArray.from_arrays(
            [from_numpy(c.astype(np.int64)) for c in counts.values()], names=list(counts)
        )
        return set_column(batch, self.col("pii_counts"), struct)


def _redact(texts: pa.Array, kind: PiiKind, token: str) -> tuple[pa.Array, np.ndarray]:
    """Replace matches of ``kind`` by ``token``; the number of replacements per text."""
    found = to_numpy(fill_null(pc.count_substring_regex(texts, kind.pattern), 0))
    if not found.any():
        return texts, found.astype(np.int64)
    if kind.valid is None:
        return pc.replace_substring_regex(texts, kind.pattern, token), found.astype(np.int64)
    rx = re.compile(kind.pattern, re.ASCII)
    values = texts.to_pylist()
    counts = np.zeros(len(values), dtype=np.int64)
    for i in np.flatnonzero(found):

        def sub(m: re.Match[str], i: int = i) -> str:
            if kind.valid(m.group()):
                counts[i] += 1
                return token
            return m.group()

        values[i] = rx.sub(sub, values[i])
    return strings(values), counts
