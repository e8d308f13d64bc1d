"""Secrets and keys in code: one scanner for the filter that drops such files and the refiner
that redacts them. Candidate files are found for the whole batch at once (one RE2 pass of all
patterns through Arrow); only those are scanned line by line in Python."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import Params, RefineOperator
from prepflow.operators.code.source import string_column

#: kind -> regex; a "generic" secret is a long, high-entropy literal assigned to a secret name
PATTERNS: dict[str, str] = {
    "private_key": r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
    "aws_access_key_id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{60,}\b",
    "slack_token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "google_api_key": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "stripe_key": r"\b[sr]k_live_[0-9A-Za-z]{20,}\b",
    "openai_key": r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b",
    "jwt": r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    "generic": (
        r"(?i)(?:api[_-]?key|secret(?:[_-]?key)?|passw(?:or)?d|access[_-]?token|auth[_-]?token)"
        r"[\"']?\s*[:=]\s*[\"']([^\s\"']{16,})[\"']"
    ),
}


@dataclass(frozen=True)
class Secret:
    kind: str
    line: int  # 1-based
    start: int  # character offsets of the secret value in the text
    end: int


class SecretScanner:
    """Finds secrets of the chosen ``kinds``; a generic one needs ``min_entropy`` bits/char."""

    KINDS: ClassVar[tuple[str, ...]] = tuple(PATTERNS)

    def __init__(self, kinds: Iterable[str] | None = None, min_entropy: float = 3.5) -> None:
        self.kinds = tuple(kinds) if kinds else self.KINDS
        self.min_entropy = min_entropy
        self._compiled = {k: re.compile(PATTERNS[k]) for k in self.kinds}
        # RE2 has no inline (?i) in the middle of an alternation: each pattern is a group
        self._any = "|".join(f"(?:{PATTERNS[k]})" for k in self.kinds)

    @staticmethod
    def check_kinds(op: str, kinds: list[str] | None) -> list[str]:
        unknown = sorted(set(kinds or ()) - set(PATTERNS))
        return (
            [f"{op}: parameter 'kinds': unknown {unknown}; known: {list(PATTERNS)}"]
            if unknown
            else []
        )

    def candidates(self, texts: pa.Array) -> list[int]:
        """Rows that match some pattern (a superset of the rows with secrets)."""
        hits = pc.match_substring_regex(pc.fill_null(texts, ""), self._any)
        return np.flatnonzero(hits.to_numpy(zero_copy_only=False)).tolist()

    def find(self, text: str) -> list[Secret]:
        """Every secret in ``text``, in order."""
        found = []
        for kind, pattern in self._compiled.items():
            for m in pattern.finditer(text):
                group = 1 if pattern.groups else 0
                value = m.group(group)
                if kind == "generic" and entropy(value) < self.min_entropy:
                    continue
                start, end = m.span(group)
                found.append(Secret(kind, text.count("\n", 0, start) + 1, start, end))
        kept: list[Secret] = []
        for s in sorted(found, key=lambda s: (s.start, -s.end)):
            if not kept or s.start >= kept[-1].end:  # overlapping matches: the first, longest
                kept.append(s)
        return kept


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


class CodeSecretRedactor(RefineOperator):
    """Replaces secrets and keys in code with ``<REDACTED:kind>`` (same scanner as
    :class:`~prepflow.operators.code.filters.CodeSecretsFilter`), and counts them in
    ``secrets_redacted``: the file stays, the credential does not."""

    domain = "code"
    cpu_heavy = True
    inputs = (Column("text", "string", "the source file's content"),)
    outputs = (
        Column("text", "string", "the content with secrets replaced"),
        Column("secrets_redacted", "int", "how many secrets were replaced"),
    )

    class Params(Params):
        kinds: list[str] | None = Field(
            None, description=f"secret kinds to redact (default all: {list(PATTERNS)})"
        )
        min_entropy: float = Field(
            3.5, ge=0, description="least entropy (bits/char) of a generic assigned secret"
        )

    def check(self) -> list[str]:
        return SecretScanner.check_kinds(self.name, self.params.kinds)

    def setup(self, ctx: Any) -> None:
        self._scanner = SecretScanner(self.params.kinds, self.params.min_entropy)

    def process(self, batch: pa.Table) -> pa.Table:
        scanner = getattr(self, "_scanner", None) or SecretScanner(
            self.params.kinds, self.params.min_entropy
        )
        name = self.col("text")
        texts = string_column(batch, name)
        values = texts.to_pylist()
        counts = [0] * len(values)
        for row in scanner.candidates(texts):
            text = values[row]
            secrets = scanner.find(text)
            for s in reversed(secrets):
                text = f"{text[: s.start]}<REDACTED:{s.kind}>{text[s.end :]}"
            values[row], counts[row] = text, len(secrets)
        batch = batch.set_column(
            batch.column_names.index(name), name, pa.array(values, pa.string())
        )
        out = self.col("secrets_redacted")
        column = pa.array(counts, pa.int64())
        if out in batch.column_names:
            return batch.set_column(batch.column_names.index(out), out, column)
        return batch.append_column(out, column)
