"""The executor interface, proved by a second executor: every shipped pipeline gives the outputs
recorded before the engine was refactored (tests/engine/golden.json), on ``local`` and on the
plain ``serial`` executor (which also summarizes global steps in reverse shard order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prepflow.core.errors import ConfigError
from prepflow.engine import executors
from prepflow.engine.runner import run_pipeline
from prepflow.testing.serial import SerialExecutor
from tests.engine.shipped import GOLDEN, Case, cases, run_case

executors.register(SerialExecutor)
GOLDEN_DIGESTS = json.loads(GOLDEN.read_text())


def _run(executor: str):
    def run(spec, **kwargs):
        return run_pipeline(spec, progress=False, executor=executor, **kwargs)

    return run


def _params(llm: bool) -> list:
    return [
        pytest.param(case, executor, id=f"{case.key}-{executor}")
        for case in cases()
        if (case.responder is not None) == llm
        for executor in ("local", "serial")
    ]


@pytest.mark.parametrize(("case", "executor"), _params(llm=True))
def test_llm_pipelines_give_the_recorded_outputs(case: Case, executor: str, tmp_path: Path):
    assert run_case(case, tmp_path, _run(executor)) == GOLDEN_DIGESTS[case.key]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "executor"), _params(llm=False))
def test_cpu_pipelines_give_the_recorded_outputs_on_real_corpora(
    case: Case, executor: str, tmp_path: Path, shared_data: Path
):
    assert run_case(case, tmp_path, _run(executor)) == GOLDEN_DIGESTS[case.key]


def test_unknown_executor_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown executor 'rayy'; available: local, ray, serial"):
        executors.get("rayy")
