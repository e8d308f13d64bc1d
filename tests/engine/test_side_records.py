"""Side records the run store keeps beside a step's shards for the dashboard (``Result.extra``):
a threshold filter's measured values (``measures/``) and an LLM step's calls per row
(``llm_calls/``). They never change the data, and ``--fresh`` and a shorter input clean them like
any shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prepflow.core.operator import ID, MEASURED_RULES, REASON
from prepflow.data import shardfile
from prepflow.engine.runner import retry_run, run_pipeline
from prepflow.engine.spec import load_yaml
from prepflow.testing import ChatRequest, ScriptedServer
from tests.helpers import write_jsonl

WORDS = "the cat sat on the mat and looked at the dog with great interest"

PIPELINE = """
name: measured
steps:
  - {op: GopherQualityFilter, name: gopher, params: {min_doc_words: 8, max_doc_words: 14}}
"""


def texts(n: int) -> list[dict]:
    """Documents of 2 to 20 words: some too short, some too long for the rules above."""
    return [{"text": " ".join(WORDS.split()[: 2 + i % 19] * (1 + i // 19 % 2))} for i in range(n)]


def read(path: Path) -> list[dict]:
    return shardfile.read(path).to_pylist()


def test_a_threshold_filter_records_every_rows_measured_values(tmp_path: Path):
    src = write_jsonl(tmp_path / "in.jsonl", texts(60))
    run = tmp_path / "run"
    run_pipeline(load_yaml(PIPELINE), input=src, output=tmp_path / "o.jsonl", run_dir=run,
                 shard_rows=25, progress=False)  # fmt: skip
    files = sorted((run / "measures" / "01-gopher").glob("shard-*.arrow"))
    assert [f.name for f in files] == ["shard-00000.arrow", "shard-00001.arrow", "shard-00002.arrow"]  # fmt: skip
    rules = json.loads(shardfile.schema(files[0]).metadata[MEASURED_RULES])
    by_param = {r["param"]: r for r in rules}
    # a minimum and a maximum of one measure share its column
    assert by_param["min_doc_words"]["column"] == by_param["max_doc_words"]["column"] == "word_count"  # fmt: skip
    assert (by_param["min_doc_words"]["bound"], by_param["min_doc_words"]["threshold"]) == ("min", 8)  # fmt: skip
    measured = {row[ID]: row for f in files for row in read(f)}
    assert sorted(measured) == list(range(60))  # every row that entered, once

    kept = {r[ID] for f in (run / "steps" / "01-gopher").glob("*.arrow") for r in read(f)}
    dropped = {r[ID]: r[REASON] for f in (run / "dropped" / "01-gopher").glob("*.arrow") for r in read(f)}  # fmt: skip
    assert kept and dropped and kept | set(dropped) == set(measured)

    def passes(row: dict) -> bool:  # the rules replayed on the recorded values
        for r in rules:
            v = row[r["column"]]
            if not np.isnan(v) and (v < r["threshold"] if r["bound"] == "min" else v > r["threshold"]):  # fmt: skip
                return False
        return True

    assert {i for i, row in measured.items() if passes(row)} == kept
    for i, reason in dropped.items():  # the value a reason quotes is the one recorded
        param, rest = reason.split(": ", 1)
        value = float(rest.split("=", 1)[1].split()[0])
        assert value == float(f"{measured[i][by_param[param]['column']]:.4g}")


def test_measures_are_cleaned_like_shards(tmp_path: Path):
    run = tmp_path / "run"
    spec = PIPELINE
    for rows in (60, 30):  # a shorter input: shards past it go, side records with them
        src = write_jsonl(tmp_path / "in.jsonl", texts(rows))
        run_pipeline(load_yaml(spec), input=src, output=tmp_path / "o.jsonl", run_dir=run,
                     shard_rows=25, progress=False)  # fmt: skip
    assert len(list((run / "measures" / "01-gopher").glob("*.arrow"))) == 2
    (run / "measures" / "notes.txt").write_text("mine")  # not prepflow's: kept
    renamed = spec.replace("name: gopher,", "name: quality,").replace("min_doc_words: 8", "min_doc_words: 9")  # fmt: skip
    run_pipeline(load_yaml(renamed), input=src, output=tmp_path / "o.jsonl", run_dir=run,
                 shard_rows=25, fresh=True, progress=False)  # fmt: skip
    assert (run / "measures" / "notes.txt").read_text() == "mine"
    assert not (run / "measures" / "01-gopher").exists()  # --fresh removed the old step's
    files = list((run / "measures" / "01-quality").glob("*.arrow"))
    rules = json.loads(shardfile.schema(files[0]).metadata[MEASURED_RULES])
    assert {r["param"]: r["threshold"] for r in rules}["min_doc_words"] == 9


LLM_PIPELINE = """
name: asked
steps:
  - op: PromptedGenerator
    name: ask
    params: {prompt: "Count the words: {{ text }}", fields: {n: int}}
"""


def count_words(req: ChatRequest) -> str:
    """A JSON answer, except for texts that say 'garble' (never valid, even when re-asked)."""
    text = req.messages[-1]["content"] if "garble" not in req.prompt else req.prompt
    if "garble" in req.messages[0]["content"] + text:
        return "not json"
    return json.dumps({"n": len(req.prompt.split(": ", 1)[1].split())})


def test_an_llm_step_records_each_rows_calls_with_prompt_and_reply(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PREPFLOW_API_KEY", "sk-never-stored")
    rows = [{"text": f"row {i} {'garble' if i % 5 == 0 else 'fine'} text"} for i in range(12)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    spec = load_yaml(LLM_PIPELINE)
    run = tmp_path / "run"
    with ScriptedServer(count_words, api_key="sk-never-stored") as server:
        spec.serving = {"backend": "openai", "base_url": server.url, "model": "test-model"}
        run_pipeline(spec, input=src, output=tmp_path / "o.jsonl", run_dir=run, shard_rows=4,
                     max_failure_rate=1, progress=False)  # fmt: skip
        sent = {tuple(m["content"] for m in r.body["messages"]) for r in server.received if r.path.endswith("/chat/completions")}  # fmt: skip
        files = sorted((run / "llm_calls" / "01-ask").glob("*.arrow"))
        calls = [c for f in files for c in read(f)]
        assert len(files) == 3 and sorted(c[ID] for c in calls) == list(range(12))
        for c in calls:
            messages = json.loads(c["messages"])
            assert messages[-1]["content"] == f"Count the words: {rows[c[ID]]['text']}"
            assert tuple(m["content"] for m in messages) in sent  # exactly what was sent
            if c[ID] % 5 == 0:  # gave up after its re-asks: the error and the raw reply
                assert c["error"].startswith("InvalidOutput") and c["reply"] == "not json"
                assert c["attempts"] == 3
            else:
                assert (c["error"], c["reply"], c["cached"], c["attempts"]) == (None, '{"n": 4}', False, 1)  # fmt: skip
                assert c["prompt_tokens"] > 0
        assert b"sk-never-stored" not in b"".join(f.read_bytes() for f in files)

        retry_run(run, serving=spec.serving, progress=False)  # recomputes the shards with failures
    again = {c[ID]: c for f in sorted((run / "llm_calls" / "01-ask").glob("*.arrow")) for c in read(f)}  # fmt: skip
    assert (
        again[1]["cached"] and again[1]["attempts"] == 0
    )  # the good rows' answers, from the cache
    assert again[0]["error"].startswith("InvalidOutput") and not again[0]["cached"]
