"""Fixtures of the operator tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prepflow.operators.common import native


@pytest.fixture(params=["native", "numpy"])
def cutter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the C passes (word and token cutters, n-gram repetition, ...), then with
    their numpy twins (the C ones are skipped, saying why, only where they cannot be compiled)."""
    if request.param == "numpy":
        monkeypatch.setattr(native, "library", lambda: None)
    elif native.library() is None:
        pytest.skip(native.build())
    yield request.param


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The numpy cutters' pass over every corpus runs in the full suite only: the quick loop
    holds them to the regexes on the random texts, and the C cutters on every corpus."""
    for item in items:
        params = getattr(item, "callspec", None)
        if params and params.params.get("cutter") == "numpy" and "corpus" in params.params:
            item.add_marker(pytest.mark.slow)
