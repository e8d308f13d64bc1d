"""docs/reference/configuration.md names every CLI command and option, every pipeline and
serving key, and every environment variable prepflow reads: a new one fails here until documented."""

from __future__ import annotations

import re
from dataclasses import fields

import typer

from prepflow.cli import app
from prepflow.engine.spec import PipelineSpec, StepSpec
from prepflow.serving.config import DEFAULT_KEY_ENVS, ServingConfig
from prepflow.serving.launchers.backends import OMP_DEFAULTS, LaunchOptions
from tests.docs.mdscan import DOCS, REPO

PAGE = DOCS / "reference" / "configuration.md"


def _commands(group, path: tuple[str, ...] = ("prepflow",)):
    for name, sub in sorted(group.commands.items()):
        if hasattr(sub, "commands"):
            yield from _commands(sub, (*path, name))
        else:
            yield " ".join((*path, name)), sub


def _section(text: str, heading: str) -> str | None:
    parts = text.split(f"\n### {heading}\n", 1)
    return parts[1].split("\n#", 1)[0] if len(parts) == 2 else None


def test_every_command_and_option_is_documented() -> None:
    text = PAGE.read_text(encoding="utf-8")
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        section = _section(text, path)
        if section is None:
            missing.append(f"### {path}")
            continue
        for param in command.params:
            names = (
                [param.name.upper()]
                if param.param_type_name == "argument"
                else [*param.opts, *param.secondary_opts]
            )
            missing += [
                f"{path}: {n}" for n in names if f"`{n}" not in section and n not in section
            ]
    assert not missing, "undocumented in configuration.md:\n" + "\n".join(missing)


def test_every_pipeline_and_serving_key_is_documented() -> None:
    text = PAGE.read_text(encoding="utf-8")
    keys = [
        *(f.name for f in fields(PipelineSpec) if f.name != "source"),  # source: where it was read
        *(f.name for f in fields(StepSpec) if f.name != "origin"),
        *ServingConfig.model_fields,
        *LaunchOptions.model_fields,
    ]
    assert not [k for k in keys if f"| `{k}` |" not in text]


def test_every_environment_variable_read_is_documented() -> None:
    read = set(DEFAULT_KEY_ENVS) | set(OMP_DEFAULTS)
    pattern = re.compile(r"""environ(?:\.get)?[(\[]\s*["']([A-Z][A-Z0-9_]+)["']""")
    for path in (REPO / "prepflow").rglob("*.py"):
        read |= set(pattern.findall(path.read_text(encoding="utf-8")))
    assert "PREPFLOW_CACHE_DIR" in read  # the scan finds what it should
    text = PAGE.read_text(encoding="utf-8")
    assert not sorted(v for v in read if f"`{v}`" not in text)
