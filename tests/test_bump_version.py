"""scripts/bump_version.py: the version moves in every file, the changelog's Unreleased section
becomes the release, nothing is written when any check fails, and nothing is published."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bump_version.py"
CHANGELOG = """# Changelog

Intro.

## [Unreleased]

### Added

- a feature

## [0.1.0] - 2026-11-30

### Added

- the first things
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "prepflow").mkdir()
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(REPO / "prepflow" / "__init__.py", tmp_path / "prepflow" / "__init__.py")
    (tmp_path / "CHANGELOG.md").write_text(CHANGELOG)
    _set_version(tmp_path, "0.1.0")
    return tmp_path


def _set_version(root: Path, v: str) -> None:
    for name, prefix in (
        ("pyproject.toml", "version = "),
        ("prepflow/__init__.py", "__version__ = "),
    ):
        path = root / name
        lines = [
            f'{prefix}"{v}"' if line.startswith(prefix) else line
            for line in path.read_text().splitlines()
        ]
        path.write_text("\n".join(lines) + "\n")


def bump(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--root", str(root), "--date", "2026-12-24"],
        capture_output=True,
        text=True,
    )


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_bump_moves_version_and_changelog(project: Path) -> None:
    res = bump(project, "0.2.0")
    assert res.returncode == 0, res.stderr
    assert 'version = "0.2.0"' in (project / "pyproject.toml").read_text()
    assert '__version__ = "0.2.0"' in (project / "prepflow" / "__init__.py").read_text()
    assert (project / "CHANGELOG.md").read_text() == CHANGELOG.replace(
        "## [Unreleased]\n", "## [Unreleased]\n\n## [0.2.0] - 2026-12-24\n"
    )
    assert "git tag -a v0.2.0" in res.stdout and "nothing was published" in res.stdout
    # the next release finds an empty Unreleased section
    res = bump(project, "0.3.0")
    assert res.returncode == 2 and "Unreleased section is empty" in res.stderr


def test_first_release_of_the_current_version(project: Path) -> None:
    (project / "CHANGELOG.md").write_text(CHANGELOG.split("## [0.1.0]")[0])
    assert bump(project, "0.1.0").returncode == 0
    assert (
        "## [0.1.0] - 2026-12-24\n\n### Added\n\n- a feature\n"
        in (project / "CHANGELOG.md").read_text()
    )


@pytest.mark.parametrize(
    ("version", "error"),
    [
        ("0.2", "expected X.Y.Z"),
        ("v0.2.0", "expected X.Y.Z"),
        ("0.0.9", "is not after the current 0.1.0"),
        ("0.1.0", "0.1.0 is already released"),
    ],
)
def test_refuses_without_writing_anything(project: Path, version: str, error: str) -> None:
    before = snapshot(project)
    res = bump(project, version)
    assert res.returncode == 2 and error in res.stderr
    assert snapshot(project) == before


def test_the_repository_changelog_can_be_released(tmp_path: Path) -> None:
    """The real CHANGELOG.md has the shape the script needs (dry run on a copy)."""
    (tmp_path / "prepflow").mkdir()
    for name in ("pyproject.toml", "prepflow/__init__.py", "CHANGELOG.md"):
        shutil.copy(REPO / name, tmp_path / name)
    res = bump(tmp_path, "99.0.0")
    assert res.returncode == 0, res.stderr
    assert "## [99.0.0] - 2026-12-24" in (tmp_path / "CHANGELOG.md").read_text()
