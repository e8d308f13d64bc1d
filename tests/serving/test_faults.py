"""Under 30% injected faults of every kind, every row ends as a result or a failure record."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import orjson
import pyarrow as pa

from prepflow.operators.general.llm import PromptedEvaluator
from prepflow.testing import FAULTS, run_operator

N = 200
RETRY_AFTER = 0.05
ERROR_TYPES = {
    "RateLimited",
    "ServerError",
    "RequestTimeout",
    "ConnectionFailed",
    "MalformedResponse",
    "InvalidOutput",
    "TruncatedOutput",
}


def judge(req) -> str:
    text = req.messages[1]["content"].split("Text:\n", 1)[1].split("\n\n", 1)[0]
    return orjson.dumps({"rationale": f"{len(text)} chars", "score": 1 + len(text) % 5}).decode()


def expected(text: str) -> tuple[float, str]:
    return float(1 + len(text) % 5), f"{len(text)} chars"


def test_no_row_lost_or_null_under_30_percent_faults(scripted, tmp_path):
    server = scripted(judge, fault_rate=0.3, seed=7, retry_after=RETRY_AFTER, hang_s=3)
    texts = [f"row {i}: " + "x" * (i % 11) for i in range(N)]
    batch = pa.table({"_id": pa.array(range(N), pa.int64()), "text": texts})
    op = PromptedEvaluator()
    options = dict(
        cache_path=tmp_path / "cache.sqlite",
        timeout_s=0.5,
        max_retries=1,
        max_reasks=1,
        backoff_s=0.01,
    )

    result = run_operator(op, batch, server, **options)

    assert set(server.injected) == set(FAULTS)
    kept, failed = result.kept.to_pydict(), result.failed.to_pydict()
    assert sorted(kept["_id"] + failed["_id"]) == list(range(N))
    assert 0 < len(failed["_id"]) < N // 4
    for i, score, rationale in zip(kept["_id"], kept["score"], kept["rationale"], strict=True):
        assert (score, rationale) == expected(texts[i])
    for row in result.failed.to_pylist():
        assert row["_error_type"] in ERROR_TYPES and row["_error"]
        assert row["_attempts"] >= 2  # a retry or a re-ask was made before giving up
        if row["_error_type"] in ("InvalidOutput", "TruncatedOutput"):
            assert row["_raw"] is not None

    by_conversation = defaultdict(list)
    for r in server.received:
        by_conversation[orjson.dumps(r.body["messages"])].append(r)
    waits = [
        later.at - r.at
        for reqs in by_conversation.values()
        for r, later in pairwise(reqs)
        if r.fault == "rate_limit"
    ]
    assert waits and min(waits) >= RETRY_AFTER

    # Resume with the same cache: rows that finished cost nothing, and keep their values.
    server.reset_counts()
    again = run_operator(op, batch, server, **options)
    prompts = {i: op.prompt({"text": texts[i]})[1]["content"] for i in range(N)}
    assert all(server.count(prompts[i]) == 0 for i in kept["_id"])
    again_kept = dict(
        zip(
            again.kept.column("_id").to_pylist(),
            zip(again.kept.column("score").to_pylist(), strict=True),
            strict=True,
        )
    )
    assert all(again_kept[i] == (s,) for i, s in zip(kept["_id"], kept["score"], strict=True))
    assert again.kept.num_rows + (again.failed.num_rows if again.failed else 0) == N
