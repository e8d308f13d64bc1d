"""Exceptions with enough context (file, line, step, parameter) to act on."""

from __future__ import annotations


class PrepflowError(Exception):
    """Base class for every error prepflow raises on purpose."""


class ConfigError(PrepflowError):
    """A pipeline, operator parameter or CLI option is invalid."""


class UnknownOperatorError(ConfigError):
    pass


class InputError(PrepflowError):
    """Malformed input data: carries the file and line (1-based) when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path, self.line, self.reason = path, line, message
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")


class CompileError(PrepflowError):
    """All problems found while compiling a pipeline, reported together."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"pipeline has {len(self.problems)} problem(s):\n{body}")


class BudgetExceeded(PrepflowError):
    """The run reached its request or cost budget: it stops (resumably), it does not fail rows."""


class OperatorContractError(PrepflowError):
    """An operator returned something that breaks its declared contract (engine bug guard)."""
