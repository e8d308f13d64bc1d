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
    r"^(?P<rule>[^:;]+?):\s*(?P<measure>[\w.\[\]]+)=(?P<value>[-+\w.]+)\s*"
    r"(?P<op><=|>=|<|>|==|!=)\s*(?P<threshold>[^;]+?)\s*(?:;.*)?$",
    re.S,
)
#: numbers masked when grouping unstructured reasons; digits inside names ("c4") are kept
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
        return Reason(_NUMBER.sub("N", head), head.split(":", 1)[0].strip())
    try:
        value: float | None = float(m["value"])
    except ValueError:
        value = None
    key = f"{m['rule']}: {m['measure']} {m['op']} {m['threshold']}"
    return Reason(key, m["rule"], value)


def reason_key(reason: str) -> str:
    """The group a reason belongs to (see the module docstring)."""
    return parse_reason(reason).key
