"""Fixtures for serving tests: scripted OpenAI-compatible servers on loopback that stop by themselves."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from prepflow.testing import ScriptedServer


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory: ``scripted(responder, **options)`` starts a server, stopped at test end."""
    with contextlib.ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(ScriptedServer(*args, **kwargs))
