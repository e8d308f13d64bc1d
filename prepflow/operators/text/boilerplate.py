"""C4's line-level cleaning as a refiner: drop boilerplate lines, keep the rest of the page."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from prepflow.core.operator import Params
from prepflow.core.tables import fill_null, from_numpy, scalar, to_numpy
from prepflow.operators.common import native
from prepflow.operators.text._words import CJK_CLASS, char_flags
from prepflow.operators.text.refiners import TextRefiner

C4 = "C4 (Raffel et al. 2020, section 2.2; datatrove C4QualityFilter)"
_CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
# C4's terminal marks (. ? ! " ') plus the CJK full-width ones; a trailing "..." is no end.
_ENDS = r"""[.?!"'。！？”’」』]$"""  # noqa: RUF001
_POLICY = r"terms of use|privacy policy|cookie policy|uses cookies|use of cookies|use cookies"
_WORD = rf"[{CJK_CLASS}]|[^\s{CJK_CLASS}]+"


class BoilerplateLineRemover(TextRefiner):
    """Remove boilerplate lines with C4's line rules; lines are stripped and re-joined by "\\n".

    A line is dropped when it has a word longer than ``max_word_length``, does not end in
    terminal punctuation (or ends in "..."), has fewer than ``min_words_per_line`` words (CJK
    characters count one word each; blank lines go too), mentions "javascript", or is a
    cookie/terms-of-use notice. Wikipedia-style citations ("[1]", "[edit]") are removed first.
    Page-level C4 rules (lorem ipsum, curly brackets, sentence count) are ``C4QualityFilter``.
    """

    cpu_heavy = True

    class Params(Params):
        remove_citations: bool = Field(
            True, description=f"Remove '[1]', '[edit]', '[citation needed]'; {C4}."
        )
        require_terminal_punct: bool = Field(
            True,
            description=f"Drop lines not ending in . ? ! \" ' (or CJK 。！？”’」』), or ending in '...'; {C4}. FineWeb turns this off.",  # noqa: RUF001
        )
        min_words_per_line: int | None = Field(
            3, ge=0, description=f"Drop lines with fewer words; {C4}."
        )
        max_word_length: int | None = Field(
            1000,
            ge=1,
            description=f"Drop lines with a longer word (characters); {C4} (from its code).",
        )
        drop_javascript: bool = Field(
            True, description=f"Drop lines containing 'javascript' (any case); {C4}."
        )
        drop_policy: bool = Field(
            True,
            description=f"Drop lines with 'terms of use', 'privacy policy', cookie notices; {C4} (from its code).",
        )

    def rewrite(self, texts: pa.Array) -> pa.Array:
        p = self.params
        lists = pc.split_pattern(fill_null(texts, ""), "\n")
        doc = to_numpy(pc.list_parent_indices(lists))
        lines = pc.utf8_trim_whitespace(pc.list_flatten(lists))
        if p.remove_citations:
            lines = pc.replace_substring_regex(lines, _CITATION, "")
        drop = np.zeros(len(lines), dtype=bool)
        if p.max_word_length is not None:
            drop |= _longest_word(lines, p.max_word_length) > p.max_word_length
        if p.require_terminal_punct:
            ends = pc.and_(
                pc.match_substring_regex(lines, _ENDS), pc.invert(pc.ends_with(lines, "..."))
            )
            drop |= ~to_numpy(ends)
        if p.min_words_per_line:
            drop |= _word_counts(lines) < p.min_words_per_line
        if p.drop_javascript:
            drop |= to_numpy(pc.match_substring(lines, "javascript", ignore_case=True))
        if p.drop_policy:
            drop |= to_numpy(pc.match_substring_regex(lines, _POLICY, ignore_case=True))
        keep = ~drop
        offsets = np.concatenate([[0], np.cumsum(np.bincount(doc[keep], minlength=len(texts)))])
        kept = pa.ListArray.from_arrays(
            from_numpy(offsets.astype(np.int32)), lines.filter(from_numpy(keep))
        )
        out = pc.binary_join(kept, scalar("\n", pa.string()))
        return pc.if_else(pc.is_null(texts), scalar(None, pa.string()), out)


def _word_counts(lines: pa.Array) -> np.ndarray:
    """C4's words of each line (:data:`_WORD`: a CJK character, or a run of other characters
    that are not whitespace), in one C pass where the library is built."""
    lib = native.library()
    if lib is None:
        return to_numpy(pc.count_substring_regex(lines, _WORD))
    return lib.count_line_words(lines, char_flags())


def _longest_word(lines: pa.Array, limit: int) -> np.ndarray:
    """Length of the longest whitespace-separated word of each line, measured only for lines
    longer than ``limit`` (no other line can hold a longer word)."""
    longest = np.zeros(len(lines), dtype=np.int64)
    long_lines = np.flatnonzero(to_numpy(pc.utf8_length(lines)) > limit)
    if len(long_lines):
        words = pc.utf8_split_whitespace(lines.take(from_numpy(long_lines)))
        lengths = to_numpy(pc.utf8_length(pc.list_flatten(words)))
        np.maximum.at(longest, long_lines[to_numpy(pc.list_parent_indices(words))], lengths)
    return longest
