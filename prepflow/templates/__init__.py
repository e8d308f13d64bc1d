"""Scaffolding for ``prepflow init``: a starter pipeline, a custom operator, its test and a sample."""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from prepflow.core.errors import ConfigError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def scaffold(target_dir: Path, name: str) -> list[Path]:
    """Write a starter project for pipeline ``name`` into ``target_dir``; return the files written.

    Writes ``pipeline.yaml``, ``<name>_ops.py`` (a custom FilterOperator), ``test_<name>_ops.py``
    and ``sample.jsonl``. Creates the directory if needed and refuses, before writing anything, if
    any of those files already exists.
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"project name {name!r}: use letters, digits, '-' and '_', starting with a letter"
        )
    words = [w for w in re.split(r"[-_]+", name) if w]
    module = "_".join(w.lower() for w in words) + "_ops"
    context = {
        "name": name,
        "module": module,
        "class_name": "".join(w[0].upper() + w[1:] for w in words) + "BlocklistFilter",
    }
    files = {
        "pipeline.yaml": "pipeline.yaml.jinja",
        f"{module}.py": "operator.py.jinja",
        f"test_{module}.py": "test_operator.py.jinja",
        "sample.jsonl": "sample.jsonl.jinja",
    }
    target_dir = Path(target_dir)
    existing = [str(target_dir / f) for f in files if (target_dir / f).exists()]
    if existing:
        raise ConfigError(
            f"refusing to overwrite existing file(s): {', '.join(existing)}; "
            "choose another directory or remove them"
        )
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, template in files.items():
        path = target_dir / filename
        with path.open("x", encoding="utf-8") as f:
            f.write(env.get_template(template).render(context))
        written.append(path)
    return written
