"""Real runs for the dashboard's tests, made once per session by the real engine, and the real
dashboard (`prepflow ui`) serving them on 127.0.0.1 in a subprocess.

- ``clean``: the shipped text-pretrain-clean on real corpora plus rows carrying HTML, attribute
  and Markdown payloads (each would set ``window.pwned`` if it ever ran);
- ``clean-min30``: the same with ``gopher_quality.min_doc_words=30`` (for comparisons);
- ``sft``: the shipped text-sft-synth against the scripted server (LLM calls per row), with one
  seed whose pairs the judge cannot answer (failures), behind an API key that must never show;
- ``secret``: a pipeline whose parameter holds a URL with a password;
- ``sft-retry`` (a copy of ``sft``, for running the retry command the dashboard shows),
  ``clean-unmeasured`` (``clean`` as a run made before measures were recorded), ``elsewhere``
  (a link to a run outside the folder), ``new`` (a run directory without a journal yet) and
  ``not-a-run`` (a folder prepflow did not make).
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prepflow.data import shardfile
from prepflow.engine.runner import run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ChatRequest, ScriptedServer
from tests.conftest import REPO, shared_data_dir
from tests.helpers import write_jsonl
from tests.operators.sft.test_sft_pipeline import responder as sft_responder

API_KEY = "sk-dashboard-7Hq2Zr91"
PASSWORD = "pw-9XaLm4Tt"
FILLER = " ".join(["the quick brown fox jumps over the lazy dog and then it rests in the sun"] * 5)
PAYLOADS = [
    "<script>window.pwned = 1</script> script payload " + FILLER,
    'attribute payload "><img src=x onerror="window.pwned = 2"> ' + FILLER,
    "entity payload &lt;script&gt;window.pwned = 3&lt;/script&gt; " + FILLER,
    '**markdown payload** [click](javascript:window.pwned=4) <b onmouseover="window.pwned=5">b</b> '
    + FILLER,
    "short <script>window.pwned = 6</script>",
]
FAIL_MARK = "UNJUDGEABLE"


@dataclass
class Runs:
    root: Path
    input: Path  # the clean run's input
    server: ScriptedServer  # alive for the session: the sft run's retry reaches it

    def run(self, name: str) -> Path:
        return self.root / name


def rows(run: Path, kind: str, step_dir: str) -> list[dict]:
    """Every row of a step's files of one kind (steps, dropped, failures, measures...)."""
    files = sorted((run / kind / step_dir).glob("shard-*.arrow"))
    return [r for f in files for r in shardfile.read(f).to_pylist()]


def judge_or_refuse(req: ChatRequest) -> str:
    """The SFT pipeline's scripted model, except that it cannot judge the marked pairs (until the
    marker is lifted: ``judge_or_refuse.fixed = True``)."""
    judge = req.prompt.startswith("Rate the response")
    if judge and FAIL_MARK in req.prompt and not getattr(judge_or_refuse, "fixed", False):
        return "I would rather not say."
    return sft_responder(req)


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    corpora = shared_data_dir() / "corpora"
    if not corpora.is_dir():
        pytest.skip(f"shared data not found at {corpora}")
    work = tmp_path_factory.mktemp("ui")
    root = work / "runs"
    texts = [json.loads(line) for line in (corpora / "fortunes_en.jsonl").open()][:300]
    texts += [json.loads(line) for line in (corpora / "kjv_bible_chapters_en.jsonl").open()][:60]
    texts += [json.loads(line) for line in (corpora / "jargon_en_entries.jsonl").open()][:140]
    texts += [{"text": t, "lang": "en", "source": "payload"} for t in PAYLOADS]
    random.Random(7).shuffle(texts)
    src = write_jsonl(work / "corpus.jsonl", texts)
    for name, overrides in (("clean", []), ("clean-min30", ["gopher_quality.min_doc_words=30"])):
        run_pipeline(load_yaml("text-pretrain-clean"), input=src, output=work / f"{name}.jsonl",
                     run_dir=root / name, overrides=overrides, progress=False)  # fmt: skip

    seeds = [json.loads(line) for line in (REPO / "examples" / "sft_seeds.jsonl").open()]
    seeds += [{"seed": "Explain <script>window.pwned = 7</script> to a <b>beginner</b>."},
              {"seed": f"{FAIL_MARK}: name a colour."}]  # fmt: skip
    seed_file = write_jsonl(work / "seeds.jsonl", seeds)
    env = pytest.MonkeyPatch()
    env.setenv("PREPFLOW_API_KEY", API_KEY)  # read by the runs here and by a retry's process
    with ScriptedServer(judge_or_refuse, api_key=API_KEY) as server:
        spec = load_yaml("text-sft-synth")
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        run_pipeline(spec, input=seed_file, output=work / "sft.jsonl", run_dir=root / "sft",
                     max_failure_rate=0.05, progress=False)  # fmt: skip

        secret = load_yaml(
            "name: secret\nsteps:\n"
            "  - op: ExpressionFilter\n"
            f"    params: {{expr: \"source != 'https://bob:{PASSWORD}@example.com/data'\"}}\n"
        )
        run_pipeline(secret, input=src, output=work / "secret.jsonl", run_dir=root / "secret",
                     progress=False)  # fmt: skip
        (root / "not-a-run").mkdir()  # a folder prepflow did not make: never listed or served
        (root / "new").mkdir()  # a run directory whose run never began (no journal yet)
        (root / "new" / ".prepflow-run").write_text("")
        shutil.copytree(root / "sft", root / "sft-retry")  # for the retry the dashboard tells
        old = shutil.copytree(root / "clean", root / "clean-unmeasured")  # as before measures
        shutil.rmtree(old / "measures")
        outside = shutil.copytree(root / "secret", work / "outside")  # a run outside the folder
        (root / "elsewhere").symlink_to(outside, target_is_directory=True)
        yield Runs(root, src, server)
    env.undo()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(root: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`prepflow ui ROOT` in a subprocess, once it answers: (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "prepflow.cli", "ui", str(root), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"prepflow ui exited: {proc.stderr.read()}") from None
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("prepflow ui did not start")


@pytest.fixture(scope="session")
def ui(runs: Runs) -> Iterator[str]:
    proc, url = start_ui(runs.root)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
