"""Single-rule text filters, as DataFlow users know them, on the shared measuring core.

Each filter is one or two threshold rules (a ``None`` threshold disables it); defaults are
DataFlow's ``text_pt_filter`` pipeline values unless the description cites another source.
Words are CJK-aware (Chinese/Japanese characters count one word each; see ``_stats``).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import Field

from prepflow.core.errors import ConfigError
from prepflow.core.operator import Params
from prepflow.operators.text._rules import Rule, RuleFilter, at_least, at_most, attr
from prepflow.operators.text._stats import BULLETS, DocStats, compile_words

DF = "DataFlow text_pt_filter"
GOPHER = "Gopher (Rae et al. 2021, appendix A)"


class WordCountFilter(RuleFilter):
    """Keep documents whose word count (punctuation-only tokens excluded) is in range."""

    class Params(Params):
        min_words: int | None = Field(
            20, ge=0, description=f"Minimum words; {DF} (WordNumberFilter)."
        )
        max_words: int | None = Field(
            100_000, ge=0, description=f"Maximum words; {DF} (WordNumberFilter)."
        )

    def rules(self) -> list[Rule]:
        return [
            at_least("min_words", "word_count", self.params.min_words, attr("word_count")),
            at_most("max_words", "word_count", self.params.max_words, attr("word_count")),
        ]


class CharCountFilter(RuleFilter):
    """Keep documents whose count of non-whitespace characters is in range."""

    class Params(Params):
        min_chars: int | None = Field(
            100, ge=0, description=f"Minimum non-space characters; {DF} (CharNumberFilter)."
        )
        max_chars: int | None = Field(
            None, ge=0, description="Maximum non-space characters; off by default."
        )

    def rules(self) -> list[Rule]:
        return [
            at_least("min_chars", "chars", self.params.min_chars, attr("n_non_space_chars")),
            at_most("max_chars", "chars", self.params.max_chars, attr("n_non_space_chars")),
        ]


class MeanWordLengthFilter(RuleFilter):
    """Keep documents whose mean word length is in range; not applied to CJK documents."""

    class Params(Params):
        min_length: float | None = Field(
            3, ge=0, description=f"Minimum mean word length; {DF} and {GOPHER}."
        )
        max_length: float | None = Field(
            10, ge=0, description=f"Maximum mean word length; {DF} and {GOPHER}."
        )

    def rules(self) -> list[Rule]:
        return [
            at_least(
                "min_length", "mean_word_length", self.params.min_length, attr("mean_word_length")
            ),
            at_most(
                "max_length", "mean_word_length", self.params.max_length, attr("mean_word_length")
            ),
        ]


class SymbolWordRatioFilter(RuleFilter):
    """Drop documents with too many '#' and ellipses ('...', '…') per word."""

    class Params(Params):
        max_ratio: float | None = Field(
            0.4, ge=0, description=f"Maximum ('#' + ellipses) / words; {DF} (Gopher uses 0.1)."
        )

    def rules(self) -> list[Rule]:
        return [
            at_most(
                "max_ratio",
                "symbol_word_ratio",
                self.params.max_ratio,
                lambda s: s.hash_word_ratio() + s.ellipsis_word_ratio(),
            )
        ]


class BulletLineFilter(RuleFilter):
    """Drop documents where most lines start with a bullet (lists, menus)."""

    class Params(Params):
        max_ratio: float | None = Field(
            0.9,
            ge=0,
            le=1,
            description=f"Maximum fraction of lines starting with a bullet ({BULLETS}); {DF} and {GOPHER}.",
        )

    def rules(self) -> list[Rule]:
        return [
            at_most(
                "max_ratio", "bullet_line_ratio", self.params.max_ratio, attr("bullet_line_ratio")
            )
        ]


class EllipsisLineFilter(RuleFilter):
    """Drop documents where many lines end with an ellipsis (truncated snippets)."""

    class Params(Params):
        max_ratio: float | None = Field(
            0.3,
            ge=0,
            le=1,
            description=f"Maximum fraction of lines ending with '...' or '…'; {DF} and {GOPHER}.",
        )

    def rules(self) -> list[Rule]:
        return [
            at_most(
                "max_ratio",
                "ellipsis_line_ratio",
                self.params.max_ratio,
                attr("ellipsis_line_ratio"),
            )
        ]


class LinePunctuationFilter(RuleFilter):
    """Drop documents where few lines end with terminal punctuation (navigation, tables)."""

    class Params(Params):
        min_ratio: float | None = Field(
            0.12,
            ge=0,
            le=1,
            description="Minimum fraction of lines ending with terminal punctuation (CJK marks included); FineWeb (Penedo et al. 2024).",
        )

    def rules(self) -> list[Rule]:
        return [
            at_least(
                "min_ratio",
                "line_punct_ratio",
                self.params.min_ratio,
                attr("terminal_punct_line_ratio"),
            )
        ]


class StopwordFilter(RuleFilter):
    """Keep documents containing enough distinct stop words (natural running text).

    The shipped lists are Gopher's eight English stop words, and common Chinese function
    characters for CJK documents.
    """

    class Params(Params):
        min_stop_words: int | None = Field(
            2, ge=0, description=f"Minimum distinct stop words; {GOPHER}."
        )
        stop_words: list[str] | None = Field(
            None,
            description="Stop words to count (case-insensitive); null uses the shipped per-language lists.",
        )

    def rules(self) -> list[Rule]:
        p = self.params
        return [
            at_least(
                "min_stop_words",
                "stop_words",
                p.min_stop_words,
                lambda s: s.stopword_count(p.stop_words),
            )
        ]


class SentenceCountFilter(RuleFilter):
    """Keep documents whose number of sentences is in range."""

    class Params(Params):
        min_sentences: int | None = Field(
            3, ge=0, description=f"Minimum sentences; {DF} (SentenceNumberFilter)."
        )
        max_sentences: int | None = Field(
            7500, ge=0, description=f"Maximum sentences; {DF} (SentenceNumberFilter)."
        )

    def rules(self) -> list[Rule]:
        return [
            at_least("min_sentences", "sentences", self.params.min_sentences, attr("sentences")),
            at_most("max_sentences", "sentences", self.params.max_sentences, attr("sentences")),
        ]


class LoremIpsumFilter(RuleFilter):
    """Drop placeholder pages: occurrences of "lorem ipsum" per character above a ratio."""

    class Params(Params):
        max_ratio: float | None = Field(
            3e-8,
            ge=0,
            description=f"Maximum 'lorem ipsum' occurrences per character (any occurrence in practice); {DF}.",
        )

    def rules(self) -> list[Rule]:
        return [
            at_most(
                "max_ratio",
                "lorem_ipsum_ratio",
                self.params.max_ratio,
                lambda s: _per_char(s, s.count("lorem ipsum", regex=False, ignore_case=True)),
            )
        ]


class CurlyBracketFilter(RuleFilter):
    """Drop code-like documents: curly brackets per character above a ratio."""

    class Params(Params):
        max_ratio: float | None = Field(
            0.025, ge=0, description=f"Maximum ('{{' + '}}') per character; {DF}."
        )

    def rules(self) -> list[Rule]:
        return [
            at_most(
                "max_ratio",
                "curly_bracket_ratio",
                self.params.max_ratio,
                lambda s: _per_char(s, s.count("{", regex=False) + s.count("}", regex=False)),
            )
        ]


class JavascriptLineFilter(RuleFilter):
    """Drop documents with several lines mentioning "javascript" (browser notices)."""

    class Params(Params):
        max_lines: int | None = Field(
            3,
            ge=0,
            description=f"Maximum lines containing 'javascript' (any case); {DF} (LineWithJavascriptFilter).",
        )

    def rules(self) -> list[Rule]:
        return [
            at_most(
                "max_lines",
                "javascript_lines",
                self.params.max_lines,
                lambda s: s.line_count("javascript", ignore_case=True),
            )
        ]


class UppercaseRatioFilter(RuleFilter):
    """Drop shouting or boilerplate documents: too many all-capital words."""

    class Params(Params):
        max_ratio: float | None = Field(
            0.2,
            ge=0,
            le=1,
            description=f"Maximum fraction of all-capital words; {DF} (CapitalWordsFilter).",
        )

    def rules(self) -> list[Rule]:
        return [
            at_most(
                "max_ratio",
                "all_caps_word_ratio",
                self.params.max_ratio,
                attr("all_caps_word_ratio"),
            )
        ]


class DigitRatioFilter(RuleFilter):
    """Drop number-heavy documents (tables, logs): too many digits per character."""

    class Params(Params):
        max_ratio: float | None = Field(
            0.15,
            ge=0,
            le=1,
            description="Maximum fraction of characters that are ASCII digits; NeMo Curator NumbersFilter.",
        )

    def rules(self) -> list[Rule]:
        return [at_most("max_ratio", "digit_ratio", self.params.max_ratio, attr("digit_ratio"))]


class UniqueWordRatioFilter(RuleFilter):
    """Drop repetitive documents: too few distinct words (case-insensitive)."""

    class Params(Params):
        min_ratio: float | None = Field(
            0.1,
            ge=0,
            le=1,
            description=f"Minimum distinct words / words; {DF} (UniqueWordsFilter).",
        )

    def rules(self) -> list[Rule]:
        return [
            at_least(
                "min_ratio", "unique_word_ratio", self.params.min_ratio, attr("unique_word_ratio")
            )
        ]


class BlocklistFilter(RuleFilter):
    """Drop documents containing more blocklisted words than allowed.

    Latin entries match whole words, CJK entries match anywhere, case-insensitively. No list
    is bundled (C4 used the LDNOOBW list): give ``words`` or a ``path`` with one entry a line.
    """

    class Params(Params):
        words: list[str] | None = Field(None, description="Blocklisted words or phrases.")
        path: str | None = Field(
            None,
            description="A UTF-8 file with one blocklisted entry a line ('#' starts a comment).",
        )
        max_hits: int | None = Field(
            0, ge=0, description="Maximum occurrences allowed; C4 removes any page with one."
        )

    def check(self) -> list[str]:
        p = self.params
        if not p.words and not p.path:
            return [f"{self.name}: give 'words' or 'path' (no blocklist is bundled)"]
        if p.path and not Path(p.path).is_file():
            return [f"{self.name}: parameter 'path': no such file {p.path!r}"]
        return []

    @cached_property
    def _pattern(self) -> str:
        problems = self.check()
        if problems:
            raise ConfigError("; ".join(problems))
        words = list(self.params.words or [])
        if self.params.path:
            lines = Path(self.params.path).read_text(encoding="utf-8").splitlines()
            words += [w for w in lines if w.strip() and not w.lstrip().startswith("#")]
        return compile_words(words)

    def rules(self) -> list[Rule]:
        pattern = self._pattern
        return [
            at_most(
                "max_hits",
                "blocklist_hits",
                self.params.max_hits,
                lambda s: s.count(pattern, ignore_case=True),
            )
        ]


def _per_char(stats: DocStats, counts: np.ndarray) -> np.ndarray:
    return counts / stats.n_chars.clip(min=1)
