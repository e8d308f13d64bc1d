"""The scripted OpenAI-compatible server, from the one place tests import it."""

from prepflow.serving.testing import ChatRequest, Reply, ScriptedServer, fault, run_operator

__all__ = ["ChatRequest", "Reply", "ScriptedServer", "fault", "run_operator"]
