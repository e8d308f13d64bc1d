"""LLM operators on math questions: quality judge, synthesis from seeds, classification."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams, reply_text
from prepflow.core.operator import Kind
from prepflow.core.prompts import PromptTemplate
from prepflow.operators.common.llm import MAX_REASON_CHARS
from prepflow.operators.reasoning._answers import is_refusal

MATH_SYSTEM = "You are an expert mathematics teacher and problem setter."

QUALITY_PROMPT = """\
Check whether this math problem is fit for a training set. It must be:
- well posed: unambiguous, with one definite answer;
- self-contained: every quantity it needs is given in the text;
- solvable: consistent and answerable with standard mathematics.

Problem:
{{ question }}

Reply with only a JSON object: {"well_posed": true|false, "self_contained": true|false, \
"solvable": true|false, "reason": "<one sentence>"}"""


class QualityVerdict(BaseModel):
    well_posed: bool = Field(description="unambiguous, with one definite answer")
    self_contained: bool = Field(description="gives everything needed to solve it")
    solvable: bool = Field(description="consistent and answerable")
    reason: str = Field(description="one sentence justifying the verdict")


class QuestionQualityFilter(LLMOperator):
    """Keeps math problems an LLM judge finds well posed, self-contained and solvable.

    The judge answers in structured output (three booleans and a one-sentence reason); a
    problem failing any check is dropped with the failed checks and the judge's reason. An
    answer that does not validate is re-asked by the serving layer and otherwise becomes a
    failure record (the problem was not judged, so it is neither kept nor silently dropped).
    """

    kind = Kind.FILTER
    domain = "reasoning"
    inputs = (Column("question", "string", "the math problem"),)
    template = PromptTemplate(QUALITY_PROMPT, MATH_SYSTEM)
    schema = QualityVerdict
    max_tokens = 256  # three booleans and one sentence

    def parse(self, row: dict[str, Any], response: Any) -> tuple[bool, str]:
        v: QualityVerdict = response.parsed
        failed = [
            name for name in ("well_posed", "self_contained", "solvable") if not getattr(v, name)
        ]
        reason = f"not {', '.join(failed)}: {v.reason}" if failed else v.reason
        return not failed, reason[:MAX_REASON_CHARS]


#: Variation kinds and the instruction each gives the model.
VARIATIONS: dict[str, str] = {
    "numbers": "Change the numbers (and names, if any) so that the answer changes, keeping the "
    "structure of the problem.",
    "constraint": "Add one extra condition or constraint that makes the solution take one more "
    "step.",
    "combine": "Combine it with the second problem below into a single problem that needs "
    "ideas from both.",
    "harder": "Make it clearly harder: more steps or a less direct method, on the same topic.",
}

SYNTH_PROMPT = """\
Write a new math problem from the seed problem below.
Variation: {{ instruction }}
The new problem must be self-contained, well posed and have a single final answer. \
Do not solve it.

Seed problem:
{{ question }}
{% if partner %}
Second problem:
{{ partner }}
{% endif %}
Reply with only the new problem."""


class QuestionSynthesizer(LLMOperator):
    """Writes ``n`` new math problems per seed by controlled variation, each linked to its seed.

    Variations cycle through ``variations``: ``numbers`` (new numbers), ``constraint`` (one more
    condition), ``combine`` (merge with the next seed of the batch; the last seed pairs with the
    first; skipped in a batch of one) and ``harder``. One request per new problem, with seed
    ``seed + i`` so samples differ and stay cacheable. Output rows copy their seed row (same
    ``_id``) with the new ``question``, the original in ``seed_question``, the ``variation`` kind
    and ``reference`` set to "" (the seed's reference answer does not hold for a new problem).
    With ``keep_seed`` the seed itself is emitted first, with ``variation: seed`` and its own
    reference answer, so ground truth verification still has rows to check.

    A refusal or an empty reply for any variation makes the seed a failure record (``prepflow
    retry`` re-asks it), rather than quietly yielding fewer problems.
    """

    kind = Kind.GENERATE
    domain = "reasoning"
    inputs = (
        Column("question", "string", "the seed problem"),
        Column("reference", "string", "the seed's reference answer", optional=True),
    )
    outputs = (
        Column("question", "string", "the new problem (the seed itself on its seed row)"),
        Column("seed_question", "string", "the seed problem it came from"),
        Column("variation", "string", "seed, numbers, constraint, combine or harder"),
        Column("reference", "string", "reference answer: the seed's on its seed row, else ''"),
    )
    template = PromptTemplate(SYNTH_PROMPT, MATH_SYSTEM)
    template_variables = ("instruction", "partner")
    max_tokens = 512  # one problem statement

    class Params(LLMParams):
        n: int = Field(2, ge=1, le=20, description="new problems per seed")
        variations: list[Literal["numbers", "constraint", "combine", "harder"]] = Field(
            ["numbers", "constraint", "combine", "harder"],
            min_length=1,
            description="variation kinds, used in turn",
        )
        keep_seed: bool = Field(True, description="also emit the seed itself as a row")

    @property
    def requests_per_row(self) -> int:
        return self.params.n

    def max_rows_out(self, rows_in: int) -> int:
        return rows_in * (self.params.n + self.params.keep_seed)

    def batch_rows(self, batch: pa.Table) -> list[dict[str, Any]]:
        """Each row with its ``combine`` partner: the next seed of the batch."""
        rows = batch.to_pylist()
        q = self.col("question")
        for i, row in enumerate(rows):
            partner = rows[(i + 1) % len(rows)]
            row["__partner"] = partner[q] if partner is not row else None
        return rows

    def _kinds(self, has_partner: bool) -> list[str]:
        usable = [v for v in self.params.variations if has_partner or v != "combine"]
        usable = usable or ["numbers"]
        return [usable[i % len(usable)] for i in range(self.params.n)]

    async def arun_row(self, row: dict[str, Any]) -> Any:
        assert self.prompt_template is not None
        partner = row.pop("__partner", None)
        seed = int(self.params.generation.get("seed", 0))
        context = self.context(row)
        kinds = self._kinds(partner is not None)
        replies = await asyncio.gather(
            *(
                self.chat(
                    self.prompt_template.messages(
                        **context,
                        instruction=VARIATIONS[kind],
                        partner=partner if kind == "combine" else None,
                    ),
                    seed=seed + i,
                )
                for i, kind in enumerate(kinds)
            )
        )
        original = row[self.col("question")]
        out = []
        if self.params.keep_seed:
            out.append(
                {
                    "question": original,
                    "seed_question": original,
                    "variation": "seed",
                    "reference": row.get(self.col("reference")) or "",
                }
            )
        for kind, reply in zip(kinds, replies, strict=True):
            out.extend(self.checked_parse({**row, "__kind": kind}, reply))
        return out

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        text = reply_text(response.text)
        if is_refusal(text):
            raise ValueError(f"the model refused: {text[:120]!r}")
        return {
            "question": text,
            "seed_question": row[self.col("question")],
            "variation": row["__kind"],
            "reference": "",
        }


#: Difficulty levels (GSM8K is mostly easy-medium, MATH levels 1-5 map to easy..olympiad).
DIFFICULTIES = ("easy", "medium", "hard", "olympiad")
#: Topic categories: the seven subjects of the MATH benchmark plus word problems and other.
CATEGORIES = (
    "arithmetic_word_problem",
    "prealgebra",
    "algebra",
    "number_theory",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "precalculus",
    "other",
)

CLASSIFY_PROMPT = """\
Classify this math problem.

Difficulty, one of: easy (one or two arithmetic steps), medium (several steps, school \
level), hard (competition level), olympiad (olympiad level).
Category, one of: {{ categories | join(", ") }}.

Problem:
{{ question }}

Reply with only a JSON object: {"difficulty": "...", "category": "..."}"""


class Classification(BaseModel):
    difficulty: Literal[DIFFICULTIES]  # type: ignore[valid-type]
    category: Literal[CATEGORIES]  # type: ignore[valid-type]


class QuestionClassifier(LLMOperator):
    """Labels each math problem with a difficulty and a category from fixed label sets.

    Difficulty: ``easy``, ``medium``, ``hard``, ``olympiad``. Category: the seven MATH subjects
    (``prealgebra``, ``algebra``, ``number_theory``, ``counting_and_probability``,
    ``geometry``, ``intermediate_algebra``, ``precalculus``) plus ``arithmetic_word_problem``
    (GSM8K style) and ``other``. Structured output enforces the labels; an answer outside them
    is re-asked, then becomes a failure record.
    """

    kind = Kind.EVALUATE
    domain = "reasoning"
    inputs = (Column("question", "string", "the math problem"),)
    outputs = (
        Column("difficulty", "string", "easy, medium, hard or olympiad"),
        Column("category", "string", "one of the fixed topic categories"),
    )
    template = PromptTemplate(CLASSIFY_PROMPT, MATH_SYSTEM)
    template_variables = ("categories",)
    schema = Classification
    max_tokens = 64  # two labels

    def context(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**super().context(row), "categories": CATEGORIES}

    def parse(self, row: dict[str, Any], response: Any) -> dict[str, Any]:
        return response.parsed.model_dump()
