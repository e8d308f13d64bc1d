"""prepflow: prepare LLM training data with LLMs in the loop.

``import prepflow`` is light: heavy backends load only when an operator needs them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own costs 5-10 ms, and `prepflow run` imports only this first
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Pipeline": "prepflow.engine.pipeline",
    "Column": "prepflow.core.columns",
    "Operator": "prepflow.core.operator",
    "GenerateOperator": "prepflow.core.operator",
    "EvaluateOperator": "prepflow.core.operator",
    "FilterOperator": "prepflow.core.operator",
    "RefineOperator": "prepflow.core.operator",
    "Params": "prepflow.core.operator",
    "registry": "prepflow.core.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prepflow' has no attribute {name!r}")


__all__ = [*_LAZY, "__version__"]
