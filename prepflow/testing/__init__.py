"""Test doubles for prepflow and its plugins: a scripted OpenAI-compatible server on loopback and
a fake run context. Tests and benchmarks import these; production code never does."""

from prepflow.testing.context import FakeContext
from prepflow.testing.scripted_server import (
    FAULTS,
    ChatRequest,
    Received,
    Reply,
    ScriptedServer,
    embed_text,
    fault,
    run_operator,
)

__all__ = [
    "FAULTS",
    "ChatRequest",
    "FakeContext",
    "Received",
    "Reply",
    "ScriptedServer",
    "embed_text",
    "fault",
    "run_operator",
]
