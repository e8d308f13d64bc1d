"""Text refiners: rewrite the text column in place (HTML, URLs, emoji, whitespace, unicode).

They work on whole columns with RE2 regexes (Arrow compute), and the whitespace tidy in one C
pass (``operators.common.native``; its RE2 twin where there is no compiler); Python runs per
document only where a library is the honest tool (HTML entities, ftfy), and then only on the rows
that need it.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import Params, RefineOperator, Requirements
from prepflow.core.tables import set_column, strings, to_numpy
from prepflow.operators.common import native
from prepflow.operators.text._badness import badness_re2
from prepflow.operators.text._nfc import nfc_unstable


class TextRefiner(RefineOperator):
    """Base of refiners that map the ``text`` column to a rewritten ``text`` column."""

    abstract = True
    domain = "text"
    inputs = (Column("text", "string", "Text to rewrite."),)
    outputs = (Column("text", "string", "The rewritten text."),)

    def rewrite(self, texts: pa.Array) -> pa.Array:
        raise NotImplementedError

    def process(self, batch: pa.Table) -> pa.Table:
        name = self.col("text")
        column = batch.column(name)
        texts = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        out = self.rewrite(texts.cast(pa.string()) if texts.type != pa.string() else texts)
        return set_column(batch, name, out)


def _flags(texts: pa.Array, pattern: str) -> pa.BooleanArray:
    """Where ``texts`` match the RE2 ``pattern``: false, not null, for a null text."""
    return _valid(pc.match_substring_regex(texts, pattern), texts)


def _valid(flags: pa.BooleanArray, texts: pa.Array) -> pa.BooleanArray:
    # and_kleene (null and false is false) rather than fill_null(flags, False): the Python
    # False becomes a pa.scalar, and that imports pandas (0.2 s) on a run that needs none of it
    return pc.and_kleene(flags, pc.is_valid(texts))


def rewrite_where(
    texts: pa.Array, where: pa.BooleanArray, rewrite: Callable[[pa.Array], pa.Array]
) -> pa.Array:
    """``rewrite`` (of a column) applied only to the texts where ``where`` (no nulls) is set: the
    rest are left as they are, without a copy through Python or a kernel pass."""
    hits = pc.sum(where).as_py() or 0
    if hits == 0:
        return texts
    if hits == len(texts):
        return rewrite(texts)
    return pc.replace_with_mask(texts, where, rewrite(texts.filter(where)))


def apply_where(texts: pa.Array, pattern: str, fn: Callable[[str], str]) -> pa.Array:
    """Apply the Python function ``fn`` only to texts matching the RE2 ``pattern``."""
    return rewrite_where(
        texts,
        _flags(texts, pattern),
        lambda hits: strings([fn(t) for t in hits.to_pylist()]),
    )


def normalize(texts: pa.Array, form: str) -> pa.Array:
    """Unicode normal form ``form`` of every text; ASCII texts are in every form already, and a
    text without a character NFC can change or move is in NFC (``_nfc``)."""
    other = _valid(pc.invert(pc.string_is_ascii(texts)), texts)
    return rewrite_where(texts, other, _nfc if form == "NFC" else partial(_normal, form=form))


def _normal(texts: pa.Array, form: str) -> pa.Array:
    return pc.utf8_normalize(texts, form)


def _nfc(texts: pa.Array) -> pa.Array:
    """NFC of ``texts`` (no nulls), through Arrow only for those NFC may change."""
    return rewrite_where(
        texts, pc.match_substring_regex(texts, nfc_unstable()), partial(_normal, form="NFC")
    )


_BLOCKS = r"(?is)<(?:script|style|noscript)\b[^>]*>.*?</(?:script|style|noscript)\s*>|<!--.*?-->"
_BREAKS = (
    r"(?i)<br\s*/?>|</?(?:p|div|li|tr|h[1-6]|ul|ol|table|section|article|header|footer"
    r"|blockquote|pre|dd|dt|title)\b[^<>]*>"
)
_TAGS = r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>"
_ENTITY = r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});"


class HtmlRemover(TextRefiner):
    """Strip HTML: script/style blocks and comments, tags (block tags become line breaks), entities.

    Only well-formed tags (``<name ...>``, ``</name>``) are removed, so "a < b > c" survives.
    Entities (``&amp;``, ``&#233;``...) are decoded with Python's ``html.unescape``, only in
    the documents that contain one.
    """

    class Params(Params):
        tags: bool = Field(
            True,
            description="Remove tags, scripts, styles and comments (DataFlow HtmlUrlRemoverRefiner).",
        )
        entities: bool = Field(
            True,
            description="Decode HTML entities such as &amp; and &#233; (DataFlow HtmlEntityFilter drops them instead).",
        )

    def rewrite(self, texts: pa.Array) -> pa.Array:
        if self.params.tags:
            texts = pc.replace_substring_regex(texts, _BLOCKS, "")
            texts = pc.replace_substring_regex(texts, _BREAKS, "\n")
            texts = pc.replace_substring_regex(texts, _TAGS, "")
        if self.params.entities:
            texts = apply_where(texts, _ENTITY, html.unescape)
        return texts


_URL = r"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]"


class UrlRemover(TextRefiner):
    """Remove URLs (http, https, ftp and www. addresses), keeping punctuation that follows them."""

    def rewrite(self, texts: pa.Array) -> pa.Array:
        return pc.replace_substring_regex(texts, _URL, "")


_PICTO = r"\x{1F000}-\x{1FAFF}\x{2600}-\x{27BF}\x{2B00}-\x{2BFF}"
_EMOJI = (
    rf"[{_PICTO}](?:[\x{{FE0E}}\x{{FE0F}}\x{{20E3}}\x{{E0020}}-\x{{E007F}}]"
    rf"|\x{{200D}}[{_PICTO}])*"
)


class EmojiRemover(TextRefiner):
    """Remove emoji and pictographs (with their variation selectors and joiner sequences).

    Covers U+1F000-U+1FAFF (emoticons, pictographs, flags, skin tones), U+2600-U+27BF
    (miscellaneous symbols, dingbats) and U+2B00-U+2BFF, as DataFlow's RemoveEmojiRefiner.
    """

    def rewrite(self, texts: pa.Array) -> pa.Array:
        return pc.replace_substring_regex(texts, _EMOJI, "")


_SPACES = r"[\t\x{000B}\x{000C}\x{00A0}\x{1680}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}]"


class WhitespaceNormalizer(TextRefiner):
    """Normalise whitespace and Unicode form, keeping line and paragraph structure.

    Unicode spaces and tabs become spaces, zero-width spaces and BOMs go, CRLF becomes LF,
    runs of spaces collapse, lines lose trailing spaces, three or more line breaks become a
    blank line, and the text is trimmed. (DataFlow's RemoveExtraSpacesRefiner joins everything
    into one line; line-based rules need the lines, so they are kept.)
    """

    class Params(Params):
        unicode_form: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = Field(
            "NFC",
            description="Unicode normal form to apply; NFKC also folds full-width forms (it turns Chinese '，' into ','); null keeps the text's form.",  # noqa: RUF001
        )

    def rewrite(self, texts: pa.Array) -> pa.Array:
        if self.params.unicode_form:
            texts = normalize(texts, self.params.unicode_form)
        return rewrite_where(texts, _flags(texts, _UNTIDY), _tidy)


def _tidy(texts: pa.Array) -> pa.Array:
    """:func:`_tidy_re2` in one C pass where the native library is built (then trimmed)."""
    lib = native.library()
    if lib is None:
        return _tidy_re2(texts)
    return pc.utf8_trim_whitespace(lib.tidy_whitespace(texts))


def _tidy_re2(texts: pa.Array) -> pa.Array:
    """The definition of the whitespace tidy, as RE2 rewrites."""
    texts = pc.replace_substring_regex(texts, r"\r\n?", "\n")
    texts = pc.replace_substring_regex(texts, r"[\x{200B}\x{FEFF}]", "")
    # each run of spaces and Unicode spaces becomes one space (a lone space is left alone)
    texts = pc.replace_substring_regex(texts, _SPACE_RUN, " ")
    texts = pc.replace_substring_regex(texts, r" \n", "\n")
    texts = pc.replace_substring_regex(texts, r"\n{3,}", "\n\n")
    return pc.utf8_trim_whitespace(texts)


_SPACE_RUN = rf"(?: |{_SPACES}){{2,}}|{_SPACES}"
#: Whitespace that Arrow's ``utf8_trim_whitespace`` trims (Unicode's, as Python's isspace).
_ANY_SPACE = (
    r"[\t-\r\x{1C}-\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}"
    r"\x{205F}\x{3000}]"
)
#: What :func:`_tidy` changes: a text matching none of these is returned as it is.
_UNTIDY = rf"\r|{_SPACES}|[\x{{200B}}\x{{FEFF}}]|  | \n|\n\n\n|^{_ANY_SPACE}|{_ANY_SPACE}$"


# What ftfy's steps other than encoding repair act on: HTML entities, terminal escapes, C1
# controls, Latin ligatures, line separators and the control characters it removes. Encoding
# repair only acts where ftfy's mojibake detector fires (``_badness``). A text with neither is
# returned by ftfy unchanged, so only the others pay for ftfy.
_FTFY_CHARS = (
    r"&#?[A-Za-z0-9]+;|[\x{00}-\x{08}\x{0B}\x{0E}-\x{1F}\x{7F}-\x{9F}\r\x{2028}\x{2029}"
    r"\x{206A}-\x{206F}\x{FB00}-\x{FB06}\x{FEFF}\x{FFF9}-\x{FFFC}\x{1D173}-\x{1D17A}"
    r"\x{E0000}-\x{E007F}]"
)
_WIDE_OR_CURLY = r"[\x{FF00}-\x{FFEF}\x{3000}\x{2018}-\x{201F}]"


class UnicodeFixer(TextRefiner):
    """Repair mojibake and broken Unicode with ftfy (``ftfy.fix_text``).

    Fixes text decoded with the wrong codec ("cafÃ©" -> "café"), HTML-escaped and C1 control
    characters, Latin ligatures, line separators and terminal escapes. Curly quotes and
    full-width characters are kept by default (ftfy's own defaults fold them, which would
    rewrite Chinese punctuation). The Unicode normal form is applied to every text with Arrow;
    ftfy runs only on texts holding a character it acts on.
    """

    cpu_heavy = True
    requires = Requirements(packages=("ftfy",), extra="text")

    class Params(Params):
        uncurl_quotes: bool = Field(
            False, description="Turn curly quotes into straight ones (ftfy default: true)."
        )
        fix_character_width: bool = Field(
            False, description="Fold full-width Latin and half-width katakana (ftfy default: true)."
        )
        normalization: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = Field(
            "NFC", description="Unicode normal form to apply (ftfy default: NFC)."
        )

    def setup(self, ctx: Any) -> None:
        # ftfy's import (30-40 ms) is made here, where the executor overlaps it with reading the
        # input, rather than by the first batch that needs ftfy, which it would hold up
        importlib.import_module("ftfy")

    def rewrite(self, texts: pa.Array) -> pa.Array:
        p = self.params
        chars = _FTFY_CHARS + (
            "|" + _WIDE_OR_CURLY if p.uncurl_quotes or p.fix_character_width else ""
        )
        pattern = f"{chars}|{badness_re2()}"
        options = {"uncurl_quotes": p.uncurl_quotes, "fix_character_width": p.fix_character_width}
        fix = partial(_fix_text, pattern=pattern, options=options | _FTFY_FIXED)
        texts = rewrite_where(texts, _flags(texts, pattern), fix)
        return normalize(texts, p.normalization) if p.normalization else texts


#: ftfy's options that UnicodeFixer always sets (Arrow applies the normal form).
_FTFY_FIXED = {"normalization": None, "explain": False}


def _fix_text(texts: pa.Array, pattern: str, options: dict[str, Any]) -> pa.Array:
    """``ftfy.fix_text(text, ftfy.TextFixerConfig(**options))`` of each text (no nulls), made as ftfy makes it: segment by
    segment (a line with its line break, cut at ``max_decode_length``), HTML unescaping off from
    the first segment holding "<" when it is "auto". ftfy runs only on the segments matching
    ``pattern`` (the characters it acts on): the others come back unchanged, and most lines of a
    text holding one such character hold none (ftfy is pure Python, about 0.1 ms a line)."""
    import ftfy

    config = ftfy.TextFixerConfig(**options)
    values = texts.to_pylist()
    segments: list[str] = []
    for text in values:
        pos = 0
        while pos < len(text):
            end = text.find("\n", pos) + 1 or len(text)
            end = min(end, pos + config.max_decode_length)
            segments.append(text[pos:end])
            pos = end
    flagged = iter(to_numpy(pc.match_substring_regex(strings(segments), pattern)).tolist())
    parts = iter(segments)
    fixed = []
    for text in values:
        cfg, out, pos = config, [], 0
        while pos < len(text):
            segment = next(parts)
            pos += len(segment)
            if cfg.unescape_html == "auto" and "<" in segment:
                cfg = cfg._replace(unescape_html=False)
            out.append(ftfy.fix_and_explain(segment, cfg)[0] if next(flagged) else segment)
        fixed.append("".join(out))
    return strings(fixed)
