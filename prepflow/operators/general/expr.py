"""Row filtering by a small, safe, vectorised expression language."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.errors import ConfigError
from prepflow.core.operator import FilterOperator, Params
from prepflow.operators.general._expr_compile import CompiledExpression, compile_expression


class ExpressionFilter(FilterOperator):
    """Keep rows for which a Python-like condition over their columns is true.

    The condition is a safe subset of Python, e.g. ``len(text) >= 20 and lang == 'en' and
    score > 0.5`` or ``not (source in ['a', 'b'])``. It is parsed, never executed: it is checked
    against a whitelist when the operator is built and evaluated a whole column at a time with
    Arrow compute kernels, so it runs at rule-filter speed.

    Allowed:

    - column names (``text``), or ``col('name')`` for names that are not identifiers;
    - literals: strings, integers, floats, ``True``/``False``/``None``; lists or tuples of literals
      only on the right of ``in``/``not in``;
    - comparisons ``== != < <= > >=`` (chains like ``0 < x <= 1`` too), ``x is None``,
      ``x is not None``, ``x in [...]``, ``x not in [...]`` and substring tests ``'abc' in text``;
    - ``and``, ``or``, ``not``; arithmetic ``+ - * / %`` and unary minus;
    - functions: ``len(x)`` (characters of a string, items of a list), ``words(x)``
      (whitespace-separated words), ``lower(x)``, ``upper(x)``, ``strip(x)``,
      ``startswith(x, 'p')``, ``endswith(x, 's')``, ``contains(x, 'sub')``,
      ``matches(x, 'regex')`` (RE2 syntax, searched anywhere), ``abs(x)``, ``coalesce(x, y, ...)``.

    Anything else (attribute access, subscripts, other calls, lambdas, comprehensions, ``**``,
    names starting with ``__``) is rejected with the offending text and its column.

    Nulls follow SQL: a comparison or function of a null is null, ``and``/``or`` use three-valued
    logic, and a row whose condition ends up null is dropped (null counts as false). Use
    ``x is None`` or ``coalesce(x, default)`` to decide about nulls explicitly. ``in`` treats
    ``None`` in the list as matching nulls. Division or modulo by zero gives null; integer
    overflow is an error. Every column the expression names must exist at this step, and the
    compiler checks its type where the expression implies one (``lang == 'en'`` needs a string
    column, ``score > 0.5`` a number). Dropped rows get the reason ``expr false: <expr>``.
    """

    class Params(Params):
        expr: str = Field(
            ...,
            description="the condition rows must satisfy to be kept, e.g. "
            "\"len(text) >= 20 and lang == 'en'\"",
        )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._compiled = self._compile()

    def _compile(self) -> CompiledExpression:
        try:
            return compile_expression(self.params.expr)
        except ConfigError as e:
            raise ConfigError(f"{self.name}: parameter 'expr': {e}") from None

    # The compiled evaluator is made of closures: rebuild it instead of pickling it (process pools).
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_compiled"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._compiled = self._compile()

    def required_inputs(self) -> list[Column]:
        return [
            Column(name, type, "referenced by the expression")
            for name, type in self._compiled.columns.items()
        ]

    def keep(self, batch: pa.Table) -> pa.Array | pa.ChunkedArray:
        try:
            return self._compiled.mask(batch)
        except ConfigError as e:
            raise ConfigError(f"{self.name}: {e}") from None

    def reason(self) -> str:
        return f"expr false: {self._compiled.text}"
