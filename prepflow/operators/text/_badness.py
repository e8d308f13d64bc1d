"""ftfy's mojibake detector (``ftfy.badness.BADNESS_RE``) translated to RE2, for Arrow.

ftfy only repairs encodings where ``is_bad`` finds mojibake; running that Python regex over
every document costs more than everything else in a cleaning pipeline. The same pattern, taken
from the installed ftfy and rewritten for RE2 (verbose-mode whitespace and comments dropped,
Python's Unicode ``\\w`` and ``\\s`` spelled out as classes), flags the same documents a whole
column at a time (checked against ``is_bad`` on real corpora in the tests).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from prepflow.core.paths import rebuildable

#: The characters for which Python's ``str.isspace`` is true (what ``\\s`` matches in ``re``).
PYTHON_SPACE = r"\t\n\x{B}\x{C}\r\x{1C}-\x{1F} \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"


def verbose_to_re2(pattern: str) -> str:
    """A Python ``re.VERBOSE`` pattern as an RE2 pattern with Python's Unicode \\w and \\s."""
    out: list[str] = []
    in_class, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1]
            if nxt in "ws":
                body = r"\pL\pN_" if nxt == "w" else PYTHON_SPACE
                out.append(body if in_class else f"[{body}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
            out.append("\\[" if c == "[" else c)
        elif c == "[":
            in_class = True
            out.append(c)
        elif c == "#":  # a comment runs to the end of the line
            while i < len(pattern) and pattern[i] != "\n":
                i += 1
            continue
        elif not c.isspace():
            out.append(c)
        i += 1
    return "".join(out)


@cache
def badness_re2() -> str:
    """RE2 pattern matching exactly where ``ftfy.badness.is_bad`` is true. Kept in the cache
    under the digest of ftfy's detector source and this module's, so that finding the texts to
    repair needs no ftfy (its import, 30-70 ms holding the GIL, is made in ``setup``, while the
    input is read)."""
    spec = importlib.util.find_spec("ftfy")
    if spec is None or spec.origin is None:
        raise ImportError("ftfy is not installed (pip install 'prepflow[text]')")
    sources = [Path(spec.origin).with_name("badness.py"), Path(__file__)]
    inputs = [p.read_bytes() for p in sources]
    return rebuildable("ftfy/badness-re2", inputs, _translate, ".txt").decode()


def _translate() -> bytes:
    from ftfy.badness import BADNESS_RE

    return verbose_to_re2(BADNESS_RE.pattern).encode()
