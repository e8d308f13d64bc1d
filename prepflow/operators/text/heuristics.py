"""Published rule sets for pretraining text, one operator per family: Gopher, C4, FineWeb.

Each rule is a parameter; set it to ``null``/``None`` to disable it. Defaults are the published
values (Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
Training Gopher", appendix A; C4: Raffel et al. 2020, section 2.2; FineWeb: Penedo et al. 2024,
as implemented in datatrove). All measures come from one shared, batch-wise measuring core.
"""

from __future__ import annotations

from pydantic import Field

from prepflow.core.operator import Params
from prepflow.operators.text._rules import Rule, RuleFilter, at_least, at_most, attr
from prepflow.operators.text._stats import DocStats

GOPHER = "Gopher (Rae et al. 2021, appendix A)"


class GopherQualityFilter(RuleFilter):
    """Gopher's quality rules: length, word length, symbols, bullets, ellipses, stop words.

    Words are CJK-aware: Chinese/Japanese characters count one word each, punctuation is split
    off words. Mean word length is not applied to CJK documents. Stop words default to the
    shipped per-language lists: Gopher's eight English words, and common Chinese function
    characters for CJK documents.
    """

    class Params(Params):
        min_doc_words: int | None = Field(
            50, ge=0, description=f"Minimum non-symbol words; {GOPHER}."
        )
        max_doc_words: int | None = Field(
            100_000, ge=0, description=f"Maximum non-symbol words; {GOPHER}."
        )
        min_avg_word_length: float | None = Field(
            3, ge=0, description=f"Minimum mean word length (characters); {GOPHER}."
        )
        max_avg_word_length: float | None = Field(
            10, ge=0, description=f"Maximum mean word length (characters); {GOPHER}."
        )
        max_symbol_word_ratio: float | None = Field(
            0.1, ge=0, description=f"Maximum ratio of '#' and of ellipses to words, each; {GOPHER}."
        )
        max_bullet_lines_ratio: float | None = Field(
            0.9,
            ge=0,
            le=1,
            description=f"Maximum fraction of lines starting with a bullet; {GOPHER}.",
        )
        max_ellipsis_lines_ratio: float | None = Field(
            0.3,
            ge=0,
            le=1,
            description=f"Maximum fraction of lines ending with an ellipsis; {GOPHER}.",
        )
        min_alpha_words_ratio: float | None = Field(
            0.8, ge=0, le=1, description=f"Minimum fraction of words with a letter; {GOPHER}."
        )
        min_stop_words: int | None = Field(
            2, ge=0, description=f"Minimum distinct stop words present; {GOPHER}."
        )
        stop_words: list[str] | None = Field(
            None,
            description="Stop words to count; null uses the shipped lists (English: Gopher's 'the, be, to, of, and, that, have, with'; Chinese for CJK documents).",
        )

    def rules(self) -> list[Rule]:
        p = self.params
        return [
            at_least("min_doc_words", "word_count", p.min_doc_words, attr("word_count")),
            at_most("max_doc_words", "word_count", p.max_doc_words, attr("word_count")),
            at_least(
                "min_avg_word_length",
                "mean_word_length",
                p.min_avg_word_length,
                attr("mean_word_length"),
            ),
            at_most(
                "max_avg_word_length",
                "mean_word_length",
                p.max_avg_word_length,
                attr("mean_word_length"),
            ),
            at_most(
                "max_symbol_word_ratio",
                "hash_word_ratio",
                p.max_symbol_word_ratio,
                DocStats.hash_word_ratio,
            ),
            at_most(
                "max_symbol_word_ratio",
                "ellipsis_word_ratio",
                p.max_symbol_word_ratio,
                DocStats.ellipsis_word_ratio,
            ),
            at_most(
                "max_bullet_lines_ratio",
                "bullet_line_ratio",
                p.max_bullet_lines_ratio,
                attr("bullet_line_ratio"),
            ),
            at_most(
                "max_ellipsis_lines_ratio",
                "ellipsis_line_ratio",
                p.max_ellipsis_lines_ratio,
                attr("ellipsis_line_ratio"),
            ),
            at_least(
                "min_alpha_words_ratio",
                "alpha_word_ratio",
                p.min_alpha_words_ratio,
                attr("alpha_word_ratio"),
            ),
            at_least(
                "min_stop_words",
                "stop_words",
                p.min_stop_words,
                lambda s: s.stopword_count(p.stop_words),
            ),
        ]


class GopherRepetitionFilter(RuleFilter):
    """Gopher's repetition rules: duplicate lines/paragraphs and repeated word n-grams.

    Line and paragraph fractions count repeated (not first) occurrences. N-gram fractions are
    over word characters: the top n-gram's count x length (only when it repeats), and the
    characters of words covered by repeated occurrences of any n-gram. For CJK documents the
    n-grams are character n-grams.
    """

    class Params(Params):
        dup_line_frac: float | None = Field(
            0.3,
            ge=0,
            le=1,
            description=f"Maximum fraction of lines that repeat an earlier line; {GOPHER}.",
        )
        dup_para_frac: float | None = Field(
            0.3,
            ge=0,
            le=1,
            description=f"Maximum fraction of paragraphs that repeat an earlier one; {GOPHER}.",
        )
        dup_line_char_frac: float | None = Field(
            0.2,
            ge=0,
            le=1,
            description=f"Maximum fraction of characters in repeated lines; {GOPHER}.",
        )
        dup_para_char_frac: float | None = Field(
            0.2,
            ge=0,
            le=1,
            description=f"Maximum fraction of characters in repeated paragraphs; {GOPHER}.",
        )
        top_ngram_char_frac: dict[int, float] = Field(
            {2: 0.2, 3: 0.18, 4: 0.16},
            description=f"n -> maximum character fraction of the most frequent n-gram; {GOPHER}.",
        )
        dup_ngram_char_frac: dict[int, float] = Field(
            {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
            description=f"n -> maximum character fraction covered by repeated n-grams; {GOPHER}.",
        )

    def check(self) -> list[str]:
        p = self.params
        bad = [n for n in (*p.top_ngram_char_frac, *p.dup_ngram_char_frac) if n < 1]
        return [f"{self.name}: n-gram sizes must be >= 1, got {bad}"] if bad else []

    def rules(self) -> list[Rule]:
        p = self.params
        rules = [
            at_most(m, m, getattr(p, m), attr(m))
            for m in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")
        ]
        rules += [
            at_most(
                f"top_ngram_char_frac[{n}]",
                f"top_{n}gram_char_frac",
                t,
                lambda s, n=n: s.top_ngram_char_frac(n),
            )
            for n, t in sorted(p.top_ngram_char_frac.items())
        ]
        rules += [
            at_most(
                f"dup_ngram_char_frac[{n}]",
                f"dup_{n}gram_char_frac",
                t,
                lambda s, n=n: s.dup_ngram_char_frac(n),
            )
            for n, t in sorted(p.dup_ngram_char_frac.items())
        ]
        return rules


C4 = "C4 (Raffel et al. 2020, section 2.2)"


class C4QualityFilter(RuleFilter):
    """C4's page-level rules: no "lorem ipsum", no curly bracket, enough sentences.

    C4's line-level rules (terminal punctuation, short lines, "javascript", cookie/terms
    notices) rewrite the text: they are the refiner ``BoilerplateLineRemover``; run it before
    this filter, as C4 counts sentences after removing lines. Sentences end at ``.!?`` followed
    by a space or the end, or at a CJK full stop.
    """

    class Params(Params):
        max_lorem_ipsum: int | None = Field(
            0,
            ge=0,
            description=f"Maximum occurrences of 'lorem ipsum' (any case); {C4}: pages containing it are removed.",
        )
        max_curly_brackets: int | None = Field(
            0,
            ge=0,
            description=f"Maximum occurrences of '{{'; {C4}: pages with a curly bracket are removed.",
        )
        min_sentences: int | None = Field(5, ge=0, description=f"Minimum sentences; {C4}.")

    def rules(self) -> list[Rule]:
        p = self.params
        return [
            at_most(
                "max_lorem_ipsum",
                "lorem_ipsum",
                p.max_lorem_ipsum,
                lambda s: s.count("lorem ipsum", regex=False, ignore_case=True),
            ),
            at_most(
                "max_curly_brackets",
                "curly_brackets",
                p.max_curly_brackets,
                lambda s: s.count("{", regex=False),
            ),
            at_least("min_sentences", "sentences", p.min_sentences, attr("sentences")),
        ]


FINEWEB = "FineWeb (Penedo et al. 2024; datatrove FineWebQualityFilter)"


class FineWebQualityFilter(RuleFilter):
    """FineWeb's quality rules: line-ending punctuation, short lines, duplicate lines, lists.

    Lines are the non-blank lines. Terminal punctuation includes the CJK full-width marks.
    Duplicate-line characters are over all characters (datatrove divides by characters
    excluding newlines).
    """

    class Params(Params):
        line_punct_thr: float | None = Field(
            0.12,
            ge=0,
            le=1,
            description=f"Minimum fraction of lines ending with terminal punctuation; {FINEWEB}.",
        )
        short_line_thr: float | None = Field(
            0.67, ge=0, le=1, description=f"Maximum fraction of short lines; {FINEWEB}."
        )
        short_line_length: int = Field(
            30, ge=0, description=f"A line of at most this many characters is short; {FINEWEB}."
        )
        short_line_length_cjk: int = Field(
            10,
            ge=0,
            description="The same for CJK documents (a CJK character carries about three Latin "
            "ones); prepflow's setting, FineWeb judged English only.",
        )
        char_duplicates_ratio: float | None = Field(
            0.01,
            ge=0,
            le=1,
            description=f"Maximum fraction of characters in repeated lines; {FINEWEB}.",
        )
        new_line_ratio: float | None = Field(
            0.3, ge=0, description=f"Maximum newlines per word (list-like pages); {FINEWEB}."
        )

    def rules(self) -> list[Rule]:
        p = self.params
        return [
            at_least(
                "line_punct_thr",
                "line_punct_ratio",
                p.line_punct_thr,
                attr("terminal_punct_line_ratio"),
            ),
            at_most(
                "short_line_thr",
                "short_line_ratio",
                p.short_line_thr,
                lambda s: s.short_line_ratio(p.short_line_length, p.short_line_length_cjk),
            ),
            at_most(
                "char_duplicates_ratio",
                "dup_line_char_frac",
                p.char_duplicates_ratio,
                attr("dup_line_char_frac"),
            ),
            at_most(
                "new_line_ratio", "newline_word_ratio", p.new_line_ratio, attr("newline_word_ratio")
            ),
        ]
