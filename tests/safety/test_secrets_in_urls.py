"""Credentials inside --base-url reach the server the way it expects and are written nowhere:
not the run directory (pipeline.yaml, manifest, report, journal, cache), not the logs, not the
output, not the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from prepflow.serving.config import ServingConfig, redact_url
from prepflow.testing import ChatRequest, ScriptedServer

from .conftest import cli

PASSWORD, QUERY_KEY, ENV_KEY = "pw-7Hq2Zr", "qk-91XaLm", "sk-env-4Tt8"


def shout(req: ChatRequest) -> str:
    return req.prompt.upper()


def test_credentials_in_the_base_url_are_sent_and_never_stored(work: Path):
    (work / "in.jsonl").write_text("".join(f'{{"text": "hello {i}"}}\n' for i in range(12)))
    (work / "p.yaml").write_text(
        "name: creds\nsteps:\n"
        "  - {op: PromptedGenerator, params: {prompt: 'say {{ text }}'}, outputs: {generated: out}}\n"
    )
    with ScriptedServer(shout) as server:
        url = server.url.replace("://", f"://alice:{PASSWORD}@") + f"?api-key={QUERY_KEY}"
        done = cli(
            "run", "p.yaml", "--input", "in.jsonl", "--output", "o.jsonl", "--base-url", url,
            "--model", "test-model", cwd=work, env={"PREPFLOW_API_KEY": ENV_KEY},
        )  # fmt: skip
        received = list(server.received)
    assert done.returncode == 0, done.stderr
    assert len(received) == 12
    for request in received:  # the user and password as Basic auth, the key as a parameter
        assert request.headers["authorization"].startswith("Basic ")
        assert request.query == f"api-key={QUERY_KEY}"
    everything = [*work.rglob("*")]
    assert (work / "runs/creds/llm_cache.sqlite").exists()
    for path in everything:
        if path.is_file():
            data = path.read_bytes()
            for secret in (PASSWORD, QUERY_KEY, ENV_KEY):
                assert secret.encode() not in data, f"{secret} in {path}"
    for secret in (PASSWORD, QUERY_KEY, ENV_KEY):
        assert secret not in done.stdout + done.stderr
    shown = (work / "runs/creds/pipeline.yaml").read_text()
    assert "***@127.0.0.1" in shown and "api-key=***" in shown
    again = cli("retry", "runs/creds", cwd=work)
    assert again.returncode == 0 and "nothing to retry" in again.stdout


def test_a_stored_redacted_url_is_never_used_as_if_it_were_the_address():
    with pytest.raises(ValidationError, match="pass the full URL again"):
        ServingConfig(backend="openai", base_url="http://***@127.0.0.1:1/v1", model="m")
    assert redact_url("https://u:p@h/v1?api-key=k&x=1") == "https://***@h/v1?x=1&api-key=***"
