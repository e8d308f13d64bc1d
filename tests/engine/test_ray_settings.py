"""The Ray executor's settings, checked before any cluster starts: per-step resources from
``settings.ray`` and ``--ray-address`` only with ``--executor ray``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from prepflow.cli import app
from prepflow.core.errors import ConfigError
from prepflow.engine.compiler import compile_pipeline
from prepflow.engine.executors.ray import Resources
from prepflow.engine.spec import load_yaml

PIPELINE = """
name: r
steps:
  - {op: WhitespaceNormalizer, name: spaces}
  - {op: GopherQualityFilter, name: gopher}
  - {op: TextExactDedup, name: exact}
settings:
  ray:
    resources:
      spaces: {num_cpus: 2}
      gopher: {num_cpus: 1, memory: 1.5GiB}
      exact: {memory: 512MB}
    llm: {num_gpus: 1}
"""


def _steps():
    return compile_pipeline(load_yaml(PIPELINE), input_schema={"text": "string"}).steps


def test_a_task_reserves_the_most_its_steps_ask():
    spaces, gopher, exact = _steps()
    res = Resources(load_yaml(PIPELINE).settings, ["spaces", "gopher", "exact"])
    assert res.of([spaces, gopher]) == {"num_cpus": 2, "memory": int(1.5 * 2**30)}
    assert res.of([exact]) == {"num_cpus": 1, "memory": 512 * 10**6}
    assert res.llm == {"num_cpus": 0, "num_gpus": 1}


@pytest.mark.parametrize(
    ("ray", "message"),
    [
        ({"resources": {"nope": {"num_cpus": 1}}}, "no step named nope"),
        ({"resources": {"spaces": {"cpus": 1}}}, "settings.ray.resources.spaces: expected"),
        ({"resources": {"spaces": {"memory": "lots"}}}, "'lots' is not a size"),
        ({"resources": {"spaces": {"num_gpus": -1}}}, "num_gpus: expected a number >= 0"),
        ({"gpu": 1}, "settings.ray: expected a mapping"),
    ],
)
def test_bad_resource_settings_are_clear_errors(ray, message):
    with pytest.raises(ConfigError, match=message):
        Resources({"ray": ray}, ["spaces"])


def test_ray_address_needs_the_ray_executor(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a"}\n')
    res = CliRunner().invoke(
        app,
        ["run", "text-pretrain-clean", "-i", str(src), "-o", str(tmp_path / "o.jsonl"),
         "--ray-address", "127.0.0.1:6379"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "--ray-address needs --executor ray (not 'local')" in res.output
