"""The API key reaches the server and nothing else: not logs, caches, reports or the run directory."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from prepflow.operators.general.llm import PromptedEvaluator
from prepflow.serving import ServingConfig, open_serving
from prepflow.testing import FakeContext

from .test_faults import judge

KEY = "sk-prepflow-TEST-7f3a9c51"


def test_api_key_never_written_anywhere(scripted, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    server = scripted(judge, api_key=KEY, fault_rate=0.3, seed=3, retry_after=0.01, hang_s=2)
    run_dir = tmp_path / "runs" / "demo"
    config = ServingConfig(
        backend="openai",
        base_url=server.url,
        model="judge-model",
        api_key_env="MY_LLM_KEY",
        max_retries=1,
        max_reasks=1,
        timeout_s=0.5,
    )
    batch = pa.table(
        {
            "_id": pa.array(range(60), pa.int64()),
            "text": [f"document {i} " * (i % 4 + 1) for i in range(60)],
        }
    )

    async def main():
        async with open_serving(config, cache_path=run_dir / "llm_cache.sqlite") as serving:
            op = PromptedEvaluator()
            op.setup(FakeContext(serving=serving))
            return await op.arun_batch(batch), serving.stats.to_dict(), repr(serving)

    result, stats, shown = asyncio.run(main())
    # What an engine writes: outputs, failure records, the report and the resolved config.
    (run_dir / "steps").mkdir()
    pq.write_table(result.kept, run_dir / "steps" / "kept.parquet")
    pq.write_table(result.failed, run_dir / "failures.parquet")
    (run_dir / "report.json").write_bytes(orjson.dumps({"llm": stats}))
    (run_dir / "serving.json").write_text(config.model_dump_json())

    assert server.received[0].headers["authorization"] == f"Bearer {KEY}"
    assert result.failed.num_rows > 0 and stats["retries"] > 0  # errors were logged and recorded
    assert any(r.name == "prepflow.serving" for r in caplog.records)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "llm_cache.sqlite",
        "kept.parquet",
        "failures.parquet",
        "report.json",
        "serving.json",
    }
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text and KEY not in shown
    assert all(KEY not in str(v) for v in result.failed.to_pydict().values())
