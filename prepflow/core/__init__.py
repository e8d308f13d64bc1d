"""Operator contract, column specs and the registry. Imports nothing heavy."""

from prepflow.core.columns import Column
from prepflow.core.errors import CompileError, ConfigError, InputError, PrepflowError
from prepflow.core.operator import (
    EvaluateOperator,
    FilterOperator,
    GenerateOperator,
    Kind,
    Operator,
    Params,
    RefineOperator,
    Requirements,
    Result,
    RowMixin,
)
from prepflow.core.registry import registry

__all__ = [
    "Column",
    "CompileError",
    "ConfigError",
    "EvaluateOperator",
    "FilterOperator",
    "GenerateOperator",
    "InputError",
    "Kind",
    "Operator",
    "Params",
    "PrepflowError",
    "RefineOperator",
    "Requirements",
    "Result",
    "RowMixin",
    "registry",
]
