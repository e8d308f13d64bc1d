"""The PyTorch-like Python API and the YAML form build the same pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prepflow import Pipeline
from prepflow.core.errors import ConfigError
from prepflow.engine.spec import load_yaml
from tests.engine.testops import TLength, TMinLength, TUpper


class Demo(Pipeline):
    """Upper-case, measure and filter."""

    def __init__(self, min_len: int = 5) -> None:
        super().__init__(name="demo")
        self.upper = TUpper()
        self.measure = TLength()
        self.keep_long = TMinLength(min=min_len)

    def forward(self) -> None:
        self.upper(text="body")
        self.measure(text="body", length="n_chars")
        self.keep_long(length="n_chars")


def test_forward_traces_steps_and_exports_yaml() -> None:
    spec = Demo(min_len=7).spec()
    assert [(s.name, s.op, s.params, s.inputs, s.outputs) for s in spec.steps] == [
        ("upper", "TUpper", {}, {"text": "body"}, {}),
        ("measure", "TLength", {}, {"text": "body"}, {"length": "n_chars"}),
        ("keep_long", "TMinLength", {"min": 7}, {"length": "n_chars"}, {}),
    ]
    again = load_yaml(Demo(min_len=7).to_yaml())
    assert [s.to_dict() for s in again.steps] == [s.to_dict() for s in spec.steps]


def test_python_and_yaml_pipelines_give_identical_output(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"body": "ab" * i}) + "\n" for i in range(20)))
    Demo().run(src, tmp_path / "a.jsonl", run_dir=tmp_path / "ra", progress=False)
    yaml_text = (
        Demo()
        .to_yaml()
        .replace("name: demo", f"name: demo\nimports: ['{Path(__file__).with_name('testops.py')}']")
    )
    Pipeline.from_yaml(yaml_text).run(
        src, tmp_path / "b.jsonl", run_dir=tmp_path / "rb", progress=False
    )
    a = (tmp_path / "a.jsonl").read_text()
    assert a == (tmp_path / "b.jsonl").read_text()
    assert [json.loads(x)["n_chars"] for x in a.splitlines()] == [2 * i for i in range(3, 20)]


def test_calling_an_operator_outside_forward_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"inside Pipeline\.forward"):
        TUpper()(text="x")


def test_binding_an_undeclared_column_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no column named 'txt'"):
        TUpper().bind({"txt": "a"})


def test_set_override_errors_name_the_step() -> None:
    spec = Demo().spec()
    with pytest.raises(ConfigError, match="no step named 'nope'"):
        spec.apply_overrides(["nope.min=3"])
    with pytest.raises(ConfigError, match=r"STEP\.PARAM=VALUE"):
        spec.apply_overrides(["min=3"])
    spec.apply_overrides(["keep_long.min=[1, 2]"])
    assert spec.step("keep_long").params["min"] == [1, 2]
    with pytest.raises(ConfigError, match=r"'min' is \[1, 2\], not a mapping"):
        spec.apply_overrides(["keep_long.min.low=1"])
    with pytest.raises(ConfigError, match=r"STEP\.PARAM=VALUE"):
        spec.apply_overrides(["keep_long..low=1"])


def test_set_override_with_a_longer_key_sets_inside_a_mapping() -> None:
    spec = Demo().spec()
    spec.serving = {"backend": "llamacpp", "launch": {"threads": 2}}
    spec.apply_overrides(["serving.launch.n_parallel=8", "keep_long.generation.seed=3"])
    assert spec.serving == {"backend": "llamacpp", "launch": {"threads": 2, "n_parallel": 8}}
    assert spec.step("keep_long").params["generation"] == {"seed": 3}
