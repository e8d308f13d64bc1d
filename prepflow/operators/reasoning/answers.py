"""Answers to math problems: generation with self-consistency, format and length filters."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.llm import LLMOperator, LLMParams, reply_text
from prepflow.core.operator import FilterOperator, GenerateOperator, Kind, Params, Requirements
from prepflow.core.prompts import PromptTemplate
from prepflow.core.tables import set_column, text_column
from prepflow.operators.reasoning._answers import is_refusal, last_boxed, vote_key
from prepflow.operators.reasoning._tokens import token_counter
from prepflow.operators.reasoning._verify import AnswerUnreadable, parse_answer

SOLVE_SYSTEM = "You are a precise mathematician who explains each step."
SOLVE_PROMPT = """\
Solve the following problem step by step. Put the final answer, and only the final answer, \
in \\boxed{} at the end.

Problem:
{{ question }}"""


class AnswerGenerator(LLMOperator):
    """Solves each math problem with chain of thought, the final answer in ``\\boxed{}``.

    With ``samples`` > 1 the problem is solved that many times (seeds ``seed``, ``seed+1``...;
    set a temperature above 0) and the final answers vote (self-consistency): ``final_answer``
    is the most frequent one (ties go to the earliest sample), ``answer`` the first solution that
    reached it, and ``agreement`` the fraction of the samples drawn that voted for it (samples
    with no final answer count against it). Answers are grouped by a canonical spelling, not by
    symbolic equivalence.

    With ``early_stop`` (the default) a bare majority of the samples is drawn first (2 of 3, 3
    of 5) and the rest only when those disagree: when they agree no further sample can change
    the vote, so the same answer costs up to a third fewer tokens (adaptive consistency).
    ``agreement`` is then 1.0 for such a row.

    A solution without a final answer is not a failure of this step: ``final_answer`` is "" and
    ``agreement`` 0, and :class:`AnswerFormatFilter` drops the row with the reason. That keeps
    "the model could not answer" (data quality: a drop with a reason) apart from "the request
    failed" (serving errors, empty replies: failure records that ``prepflow retry`` re-runs).
    """

    kind = Kind.GENERATE
    domain = "reasoning"
    inputs = (Column("question", "string", "the math problem"),)
    outputs = (
        Column("answer", "string", "the chosen solution, chain of thought included"),
        Column("final_answer", "string", "content of its \\boxed{}, '' when there is none"),
        Column("agreement", "float", "fraction of samples voting for the final answer"),
    )
    template = PromptTemplate(SOLVE_PROMPT, SOLVE_SYSTEM)

    class Params(LLMParams):
        samples: int = Field(1, ge=1, le=64, description="solutions per problem for voting")
        early_stop: bool = Field(
            True, description="draw a majority of the samples first, the rest only on dissent"
        )

    @property
    def requests_per_row(self) -> int:
        return self.params.samples

    async def arun_row(self, row: dict[str, Any]) -> Any:
        seed, n = int(self.params.generation.get("seed", 0)), self.params.samples
        messages = self.prompt(row)
        first = n // 2 + 1 if self.params.early_stop else n
        solutions: list[str] = []
        for wave in (range(first), range(first, n)):
            replies = await asyncio.gather(*(self.chat(messages, seed=seed + i) for i in wave))
            solutions += [reply_text(r.text) for r in replies]
            finals = [last_boxed(s) for s in solutions]
            if None not in finals and len({vote_key(f) for f in finals}) == 1:
                break  # a majority agrees: no later sample can change the vote
        votes = Counter(vote_key(f) for f in finals if f is not None)
        if not votes:
            return self.check_output({"answer": solutions[0], "final_answer": "", "agreement": 0.0})
        winner, count = votes.most_common(1)[0]
        chosen = next(i for i, f in enumerate(finals) if f is not None and vote_key(f) == winner)
        return self.check_output(
            {
                "answer": solutions[chosen],
                "final_answer": finals[chosen],
                "agreement": count / len(solutions),
            }
        )


class AnswerFormatFilter(FilterOperator):
    """Keeps solutions that end in a final answer in ``\\boxed{}`` that parses as mathematics.

    Drop reasons: ``refusal`` (the reply opens with a refusal), ``no \\boxed{} answer`` (none,
    or the last one is never closed: output cut off), ``final answer does not parse: ...``
    (math-verify reads nothing, or it is longer than a final answer can be).
    """

    domain = "reasoning"
    cpu_heavy = True
    requires = Requirements(packages=("math_verify",), extra="math")
    inputs = (Column("answer", "string", "the solution text"),)

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        reasons = [
            _format_problem(t)
            for t in text_column(batch, self.col("answer"), self.name).to_pylist()
        ]
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())


def _format_problem(text: str | None) -> str | None:
    if text is None:
        return "no answer"
    if is_refusal(text):
        return "refusal"
    final = last_boxed(text)
    if final is None:
        return "no \\boxed{} answer"
    try:
        parse_answer(final)
    except AnswerUnreadable as e:
        return f"final answer does not parse: {e}"
    return None


class AnswerTokenLengthFilter(FilterOperator):
    """Keeps texts whose length in tokens lies in [``min_tokens``, ``max_tokens``].

    Tokens are counted offline with an OpenAI BPE encoding bundled in ``bpe-openai``
    (tiktoken-compatible ids; ``cl100k_base`` by default, or ``o200k_base``, ``voyage3_base``),
    close to most chat models' counts.
    Drop reason: ``N tokens < min`` or ``N tokens > max``.
    """

    domain = "reasoning"
    cpu_heavy = True
    requires = Requirements(packages=("bpe_openai",), extra="math")
    inputs = (Column("text", "string", "the text to measure, e.g. the answer"),)

    class Params(Params):
        min_tokens: int = Field(1, ge=0, description="fewest tokens kept")
        max_tokens: int = Field(4096, ge=1, description="most tokens kept")
        encoding: str = Field("cl100k_base", description="cl100k_base, o200k_base or voyage3_base")

    def check(self) -> list[str]:
        p = self.params
        if p.min_tokens > p.max_tokens:
            return [f"{self.name}: min_tokens ({p.min_tokens}) exceeds max_tokens ({p.max_tokens})"]
        try:
            token_counter(p.encoding)
        except ModuleNotFoundError:
            pass  # reported as a missing requirement
        except ValueError as e:
            return [f"{self.name}: {e}"]
        return []

    def keep(self, batch: pa.Table) -> tuple[pa.Array, pa.Array]:
        count = token_counter(self.params.encoding)
        texts = text_column(batch, self.col("text"), self.name).to_pylist()
        lo, hi = self.params.min_tokens, self.params.max_tokens
        reasons = []
        for text in texts:
            n = count(text or "")
            reasons.append(
                f"min_tokens: tokens={n} < {lo}"
                if n < lo
                else f"max_tokens: tokens={n} > {hi}"
                if n > hi
                else None
            )
        return pa.array([r is None for r in reasons]), pa.array(reasons, pa.string())


class ReferenceAnswer(GenerateOperator):
    """Extracts the reference final answer from a seed's worked solution.

    Reads GSM8K solutions (the text after the last ``####``), MATH solutions (the last
    ``\\boxed{}``) or a bare answer (a solution of at most ``max_bare_chars`` characters with
    neither marker is the answer itself). Anything else gives "": no reference, which the
    ground-truth filter treats as unverified rather than wrong.
    """

    domain = "reasoning"
    inputs = (Column("solution", "string", "the seed's worked solution or answer"),)
    outputs = (Column("reference", "string", "the final answer, '' when none is found"),)

    class Params(Params):
        max_bare_chars: int = Field(40, ge=0, description="longest solution read as a bare answer")

    def process(self, batch: pa.Table) -> pa.Table:
        solutions = batch.column(self.col("solution")).to_pylist()
        refs = pa.array([self._reference(s or "") for s in solutions], pa.string())
        return set_column(batch, self.col("reference"), refs)

    def _reference(self, solution: str) -> str:
        if "####" in solution:
            return solution.rsplit("####", 1)[1].strip().replace(",", "")
        boxed = last_boxed(solution)
        if boxed is not None:
            return boxed
        bare = solution.strip()
        return bare if len(bare) <= self.params.max_bare_chars else ""
