"""The documentation site builds with `mkdocs build --strict`: no warning (a broken link, a missing
anchor, a page outside the nav, a nav entry without a page). Skipped where MkDocs is not installed;
scripts/setup.sh installs it (the `docs` extra), so CI runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.mdscan import REPO


def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip(
        "material", reason="mkdocs-material is not installed (pip install -e '.[docs]')"
    )
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "operators" / "index.html").is_file()
