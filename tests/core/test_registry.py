from __future__ import annotations

import pytest

from prepflow.core import Column, FilterOperator, Params
from prepflow.core.errors import UnknownOperatorError
from prepflow.core.registry import describe, registry


def test_builtin_operators_have_complete_metadata() -> None:
    names = registry.names()
    assert names, "no operators registered"
    for name in names:
        info = registry.info(name)
        assert info["kind"] in {"generate", "evaluate", "filter", "refine"}
        assert info["summary"], f"{name} has no docstring summary"
        for p in info["params"]:
            assert p["description"], f"{name}.{p['name']} has no description"


def test_unknown_operator_suggests_close_names() -> None:
    class NearMissFilter(FilterOperator):
        """Test operator."""

        inputs = (Column("text", "string"),)

        def keep(self, batch):
            raise NotImplementedError

    try:
        with pytest.raises(UnknownOperatorError, match="did you mean NearMissFilter"):
            registry.get("NearMisFilter")
    finally:
        registry.unregister("NearMissFilter")


def test_describe_lists_params_with_types_and_defaults() -> None:
    from pydantic import Field

    class DescribedFilter(FilterOperator):
        """One line.

        Longer text."""

        inputs = (Column("text", "string", "the text"),)

        class Params(Params):
            n: int = Field(3, description="how many")

        def keep(self, batch):
            raise NotImplementedError

    try:
        info = describe(DescribedFilter)
        assert info["summary"] == "One line."
        assert info["params"] == [
            {"name": "n", "type": "int", "default": 3, "required": False, "description": "how many"}
        ]
        assert info["inputs"][0]["description"] == "the text"
    finally:
        registry.unregister("DescribedFilter")


def test_duplicate_operator_name_is_rejected() -> None:
    from tests.engine.testops import TUpper  # noqa: F401  (registers TUpper)

    with pytest.raises(ValueError, match="'TUpper' is taken"):
        type("TUpper", (FilterOperator,), {"__doc__": "x", "__module__": "elsewhere"})


def test_operator_index_names_the_module_of_every_builtin_operator() -> None:
    from prepflow.operators import builtin_index
    from prepflow.operators.index import MODULES

    assert builtin_index() == MODULES, (
        "prepflow/operators/index.py is out of date: run "
        "python -c 'import prepflow.operators as o; o.write_index()'"
    )


def _fresh_interpreter(code: str) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_builtin_operators_come_through_the_entry_point_third_parties_use() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="prepflow.operators") if e.name == "prepflow"]
    assert ep.value == "prepflow.operators.index:MODULES"


def test_lookup_by_name_imports_only_the_defining_module() -> None:
    out = _fresh_interpreter(
        "import sys\n"
        "from prepflow.core.registry import registry\n"
        "cls = registry.get('GopherQualityFilter')\n"
        "print(cls.__module__, 'UnicodeFixer' in registry, registry._loaded,\n"
        "      sorted(m for m in sys.modules if m.startswith('prepflow.operators.') and '._' not in m))"
    )
    # the defining module and what it imports (the shared toolkit's UTF-8 passes and their C
    # twins), nothing else
    assert out == (
        "prepflow.operators.text.heuristics True False "
        "['prepflow.operators.common', 'prepflow.operators.common.native', "
        "'prepflow.operators.common.utf8', "
        "'prepflow.operators.index', 'prepflow.operators.text', "
        "'prepflow.operators.text.heuristics', "
        "'prepflow.operators.text.refiners']"
    )


def test_stale_index_entry_falls_back_to_loading_every_module() -> None:
    out = _fresh_interpreter(
        "import prepflow.operators.index as index\n"
        "index.MODULES['GopherQualityFilter'] = 'prepflow.operators.general.llm'\n"
        "from prepflow.core.registry import registry\n"
        "print(registry.get('GopherQualityFilter').__module__, registry._loaded)"
    )
    assert out == "prepflow.operators.text.heuristics True"
