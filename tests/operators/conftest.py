"""Fixtures of the operator tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prepflow.operators.common import native


@pytest.fixture(params=["native", "numpy"])
def cutter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the C word and token cutters, then with their numpy twins (the C ones
    are skipped, saying why, only where they cannot be compiled)."""
    if request.param == "numpy":
        monkeypatch.setattr(native, "library", lambda: None)
    elif native.library() is None:
        pytest.skip(native.build())
    yield request.param
