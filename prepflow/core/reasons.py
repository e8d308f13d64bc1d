"""Drop reasons: the convention filters follow, so that reports can group and measure them.

A reason names the rule (the parameter that sets the threshold, or a short rule id), then, for a
threshold rule, the measure, its value and the threshold, then optionally a detail after ``;``::

    min_doc_words: word_count=3 < 50
    threshold: score=2 < 3; the answer does not address the question
    languages: lang=fr not in [en, zh]
    exact duplicate of _id 12

Reports group drops by rule and threshold (the value is what varies), histogram the values, and
show examples; a reason without the measured part is grouped with its numbers masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MEASURED = re.compile(
    r"^(?:(?P<rule>[^:;=]+?):\s*)?(?P<measure>[\w.\[\]]+)=(?P<value>[-+\w.]+)\s*"
    r"(?P<op><=|>=|<|>|==|!=)\s*(?P<threshold>[^;]+?)\s*(?:;.*)?$",
    re.S,
)
#: what varies between rows of one unstructured rule, masked when grouping: a row id
#: ("duplicate of _id 12") and numbers in parentheses ("(est. jaccard 0.93)"); numbers that are
#: part of the rule itself ("len(text) >= 10") are kept
_ROW_ID = re.compile(r"(?<=_id )\d+")
_IN_PARENS = re.compile(r"\([^()]*\d[^()]*\)")
_NUMBER = re.compile(r"(?<![A-Za-z_\d])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![A-Za-z_\d])")


@dataclass(frozen=True)
class Reason:
    """A reason split into its parts (``value`` None: not a measured threshold rule)."""

    key: str  # what drops are grouped by: the rule, measure, operator and threshold
    rule: str
    value: float | None = None


def parse_reason(reason: str) -> Reason:
    m = _MEASURED.match(reason)
    if m is None:
        head = reason.split(";", 1)[0].strip()
        key = _IN_PARENS.sub(lambda p: _NUMBER.sub("N", p.group()), _ROW_ID.sub("N", head))
        return Reason(key, head.split(":", 1)[0].strip())
    try:
        value: float | None = float(m["value"])
    except ValueError:
        value = None
    rule = m["rule"] or m["measure"]
    key = f"{m['measure']} {m['op']} {m['threshold']}"
    return Reason(f"{m['rule']}: {key}" if m["rule"] else key, rule, value)


def reason_key(reason: str) -> str:
    """The group a reason belongs to (see the module docstring)."""
    return parse_reason(reason).key
