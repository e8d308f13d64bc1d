"""Loading a pipeline's YAML: libyaml's parser where PyYAML has it, the same specs as the
pure-Python one, and a syntax error quoted as the pure-Python parser quotes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prepflow.core.errors import ConfigError
from prepflow.engine import spec
from prepflow.engine.spec import load_yaml, resolve_pipeline_path, shipped_pipelines


@pytest.mark.parametrize("name", shipped_pipelines())
def test_each_shipped_pipeline_loads_as_the_pure_python_parser_reads_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = load_yaml(name)
    monkeypatch.setattr(spec, "_FAST_LOADER", yaml.SafeLoader)
    slow = load_yaml(name)
    assert fast.to_dict() == slow.to_dict()
    assert [s.origin for s in fast.steps] == [s.origin for s in slow.steps]
    assert yaml.safe_load(resolve_pipeline_path(name).read_text())["steps"]


def test_steps_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\n\nsteps:\n  - op: A\n    params: {x: 1}\n  - {op: B}\n")
    assert [s.origin for s in load_yaml(path).steps] == [f"{path}:4", f"{path}:6"]


def test_a_syntax_error_names_the_file_line_and_column_and_quotes_the_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nsteps: [{op: A}\nnext: 1\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(path)
    message = str(e.value)
    assert message.startswith(f"{path}: invalid YAML:")
    assert "line 2, column 8" in message and "line 3, column 1" in message
    assert "    steps: [{op: A}\n           ^" in message
