"""Judges run with the embedded judge model when the pipeline launches the embedded default."""

from __future__ import annotations

import asyncio
import time

from prepflow.core.llm import LLMOperator
from prepflow.engine.executors.worker import _serving_for
from prepflow.engine.progress import RunProgress
from prepflow.operators.common.llm import JUDGE_MODEL, Judge
from prepflow.operators.general.llm import PromptedEvaluator, PromptedFilter, PromptedGenerator
from prepflow.operators.sft.judges import QualityJudge
from prepflow.serving import LazyServing, OpenAIServing, ServingConfig
from prepflow.serving.catalog import CATALOG, DEFAULT_MODEL


def test_judges_prefer_the_judge_model_and_generators_none():
    assert JUDGE_MODEL in CATALOG and JUDGE_MODEL != DEFAULT_MODEL
    assert LLMOperator.preferred_embedded_model is None
    assert PromptedGenerator(prompt="x").preferred_embedded_model is None
    for op in (PromptedEvaluator(), PromptedFilter(), QualityJudge()):
        assert isinstance(op, Judge) and op.preferred_embedded_model == JUDGE_MODEL


def test_the_embedded_default_gets_a_sibling_for_the_judge_model(tmp_path):
    run = LazyServing(ServingConfig(), log_dir=tmp_path, max_requests=10)
    judge = run.for_model(JUDGE_MODEL)
    assert judge is not run and judge.root is run and run.root is run
    assert judge.config.model == JUDGE_MODEL and judge.config.backend == "llamacpp"
    assert judge._args["log_dir"] == tmp_path / JUDGE_MODEL  # its own llamacpp.log
    assert judge._args["max_requests"] == 10
    assert run.for_model(JUDGE_MODEL) is judge  # one server per model
    assert run.for_model(None) is run
    assert run.clients == []  # nothing opened, nothing launched
    asyncio.run(run.aclose())


def test_a_model_the_user_names_always_wins():
    for config in (
        ServingConfig(model=DEFAULT_MODEL),  # serving.model or --model, even the default
        ServingConfig(model="/models/mine.gguf"),
        ServingConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="gpt"),
        ServingConfig(backend="vllm", model="Qwen/Qwen2.5-7B-Instruct"),
    ):
        run = LazyServing(config)
        assert run.for_model(JUDGE_MODEL) is run


def test_workers_give_each_step_its_serving():
    run = LazyServing(ServingConfig())
    assert _serving_for(PromptedFilter(), run) is run.for_model(JUDGE_MODEL)
    assert _serving_for(PromptedGenerator(prompt="x"), run) is run
    assert _serving_for(PromptedFilter(), None) is None


def test_progress_counts_the_judge_servers_requests_too(tmp_path):
    run = LazyServing(ServingConfig(), log_dir=tmp_path)
    judge = run.for_model(JUDGE_MODEL)
    for serving, requests, hits in ((run, 3, 1), (judge, 4, 2)):
        serving._client = OpenAIServing("http://127.0.0.1:9/v1", serving.config.model or "m")
        serving._client.stats.requests, serving._client.stats.cache_hits = requests, hits
    line = RunProgress(["a"], mode="off", serving=run).llm_line(time.monotonic())
    assert line is not None and "7 requests" in line and "cache hits 3" in line
