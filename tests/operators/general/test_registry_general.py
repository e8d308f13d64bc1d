"""The general operators are found by name in the registry, with the kind and flags they claim."""

from __future__ import annotations

import pytest

from prepflow.core import registry


@pytest.mark.parametrize(
    ("name", "kind", "is_global"),
    [
        ("SelectColumns", "refine", False),
        ("DropColumns", "refine", False),
        ("RenameColumns", "refine", False),
        ("ExpressionFilter", "filter", False),
        ("ExactDedup", "filter", True),
        ("Sample", "filter", False),
        ("Head", "filter", True),
        ("ExtractJsonFields", "generate", False),
    ],
)
def test_registered(name: str, kind: str, is_global: bool) -> None:
    info = registry.info(name)
    assert (info["kind"], info["global"], info["domain"]) == (kind, is_global, "general")
    assert info["summary"] and "\n" not in info["summary"]
    assert all(p["description"] for p in info["params"])
