"""How values are written on the pages: numbers, durations, money, and text with any URL's
credentials masked (a run's input, a parameter). Jinja escapes everything these return."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from prepflow.serving.config import REDACTED, redact_url

NONE = "\u2013"  # an en dash: no value
LIST_ITEMS = 12  # items of a long list shown (embeddings)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def masked(text: Any) -> str:
    """``text`` with the user, password and secret query values of every URL in it masked."""
    return _URL.sub(lambda m: _mask_url(m.group()), str(text))


def _mask_url(url: str) -> str:
    try:
        return redact_url(url)
    except ValueError:  # not parseable as a URL (a bad port): mask what looks like userinfo
        return _USERINFO.sub(f"{REDACTED}@", url)


def display(value: Any) -> str:
    """A value as text: strings as they are, the rest as JSON (long lists shortened)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) > LIST_ITEMS:
        head = orjson.dumps(value[:LIST_ITEMS], default=str).decode()
        return f"{head[:-1]}, … ({len(value):,} items)]"
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode()


def num(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4g}"
    return f"{int(value):,}"


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else NONE


def money(value: float | None) -> str:
    return NONE if value is None else f"${value:,.4f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def when(t: float | None) -> str:
    return NONE if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


FILTERS = {
    "masked": masked,
    "num": num,
    "money": money,
    "duration": duration,
    "when": when,
}
