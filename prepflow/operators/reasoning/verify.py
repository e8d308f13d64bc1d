"""Ground-truth verification: is the model's final answer symbolically the reference answer?"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import EvaluateOperator, FilterOperator, Params, Requirements
from prepflow.core.tables import set_column
from prepflow.operators.reasoning._verify import AnswerUnreadable, equivalent

CORRECT, INCORRECT, NO_REFERENCE = "correct", "incorrect", "no_reference"


class VerifyParams(Params):
    timeout_s: int = Field(
        5, ge=1, le=60, description="time limit for parsing and comparing one answer pair"
    )


class _GroundTruth:
    """Shared by the filter and the evaluator: the verdict for every row of a batch."""

    domain = "reasoning"
    version = "1"
    cpu_heavy = True
    requires = Requirements(packages=("math_verify",), extra="math")
    inputs = (
        Column("final_answer", "string", "the model's final answer (content of \\boxed{})"),
        Column("reference", "string", "the reference answer; null or '' when there is none"),
    )
    Params: ClassVar[type[Params]] = VerifyParams

    def verdicts(self, batch: pa.Table) -> list[tuple[str, str | None]]:
        """``(label, detail)`` per row: correct, incorrect (detail: both answers) or
        no_reference; an unreadable side is incorrect, with what was unreadable."""
        answers = batch.column(self.col("final_answer")).to_pylist()
        references = batch.column(self.col("reference")).to_pylist()
        return [self._verdict(r, a) for r, a in zip(references, answers, strict=True)]

    def _verdict(self, reference: str | None, answer: str | None) -> tuple[str, str | None]:
        if not reference or not reference.strip():
            return NO_REFERENCE, None
        try:
            if equivalent(reference, answer or "", self.params.timeout_s):
                return CORRECT, None
            return INCORRECT, f"answer {answer!r} != reference {reference!r}"
        except AnswerUnreadable as e:
            return INCORRECT, f"unverifiable: {e}"


class GroundTruthFilter(_GroundTruth, FilterOperator):
    """Drops rows whose final answer is not symbolically equal to the reference answer.

    Equality is math-verify's: ``\\frac{1}{2}``, ``0.5`` and ``50\\%`` agree, units and ``\\$``
    are ignored, sets compare unordered, intervals by their ends and openness. Measured on a
    hand-labelled set of 241 pairs: 98.8% accuracy and no non-equivalent pair accepted (misses
    are unit conversions such as 2 hours vs 120 minutes). Rows without a reference are kept
    (unless ``require_reference``): synthesized problems have none. Deterministic CPU work
    under math-verify's time limits. Drop reason: ``answer '...' != reference '...'``,
    ``unverifiable: ...`` or ``no reference answer``.
    """

    class Params(VerifyParams):
        require_reference: bool = Field(False, description="also drop rows without a reference")

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        reasons = []
        for label, detail in self.verdicts(batch):
            if label == NO_REFERENCE:
                reasons.append("no reference answer" if self.params.require_reference else None)
            else:
                reasons.append(detail if label == INCORRECT else None)
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())


class GroundTruthEvaluator(_GroundTruth, EvaluateOperator):
    """Labels each row ``correct``, ``incorrect`` or ``no_reference`` against its reference.

    The same check as :class:`GroundTruthFilter`, recorded instead of enforced, e.g. to measure
    a model's accuracy on a labelled set or to keep incorrect answers for preference data.
    """

    outputs = (Column("verification", "string", "correct, incorrect or no_reference"),)

    def process(self, batch: pa.Table) -> pa.Table:
        labels = pa.array([label for label, _ in self.verdicts(batch)], pa.string())
        return set_column(batch, self.col("verification"), labels)
