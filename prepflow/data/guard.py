"""Refuse, before anything is read, a run whose outputs would overwrite or pollute its input."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from prepflow.core.errors import ConfigError
from prepflow.data import files
from prepflow.data.readers import Source


def check_outputs_spare_input(
    source: Source, input_url: str, output: str, run_dir: Path | None = None
) -> None:
    """Raise when ``output`` (or ``run_dir``) is an input file (links followed), lies inside an
    input directory, or matches an input glob: the run would destroy its input, or the next run
    would read its own output as input."""
    if not source.local:
        return  # remote inputs: nothing on this machine to compare with
    inputs = {_resolved(p) for p in source.paths}
    root = _input_root(input_url)
    targets = [("--output", output)]
    if run_dir is not None:
        targets.append(("--run-dir", os.fspath(run_dir)))
    for option, value in targets:
        if not files.is_local(value):
            continue
        path = _resolved(value)
        if path in inputs:
            raise ConfigError(
                f"{option} {value!r} is the input file {_shown(path)}: writing it would "
                "destroy the input; choose another path"
            )
        if option == "--output" and any(_inside(p, path) for p in inputs):
            raise ConfigError(
                f"{option} {value!r} holds input files: writing it would destroy the input"
            )
        if root is not None and root.is_dir() and _inside(path, root):
            raise ConfigError(
                f"{option} {value!r} is inside the input directory {_shown(root)}: the next "
                "run would read it as input; choose a path outside it"
            )
        if files.is_glob(input_url) and fnmatch.fnmatch(str(path), str(_resolved(input_url))):
            raise ConfigError(
                f"{option} {value!r} matches the input pattern {input_url!r}: the next run "
                "would read it as input; choose a path the pattern does not match"
            )


def _resolved(path: str) -> Path:
    """An absolute path with links followed (a path that does not exist yet: its parent's)."""
    return Path(files.local_path(path)).resolve()


def _input_root(url: str) -> Path | None:
    """The directory an input names (None for a file or a glob)."""
    if not files.is_local(url) or files.is_glob(url):
        return None
    return _resolved(url)


def _inside(path: Path, directory: Path) -> bool:
    return path != directory and path.is_relative_to(directory)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
