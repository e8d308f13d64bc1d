#!/usr/bin/env python3
"""Prepare a release: ``scripts/bump_version.py X.Y.Z``.

Sets the version in pyproject.toml and prepflow/__init__.py, moves the changelog's Unreleased
section under ``## [X.Y.Z] - <today>`` (leaving an empty Unreleased above it), and prints the git
commands that commit and tag the release. It publishes nothing and runs no git command: review the
diff, then run them yourself. Every check passes before any file is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = re.compile(r"\d+\.\d+\.\d+")
UNRELEASED = "## [Unreleased]"
#: (file, pattern whose group 2 is the version): each must match exactly once.
TARGETS = (
    ("pyproject.toml", re.compile(r'^(version = ")([^"]+)(")$', re.M)),
    ("prepflow/__init__.py", re.compile(r'^(__version__ = ")([^"]+)(")$', re.M)),
)


class BumpError(Exception):
    pass


def bump(root: Path, new: str, date: dt.date) -> dict[Path, str]:
    """The new text of each file to change; raises :class:`BumpError` naming what is wrong."""
    if not VERSION.fullmatch(new):
        raise BumpError(f"version {new!r}: expected X.Y.Z, e.g. 0.2.0")
    changelog = root / "CHANGELOG.md"
    texts = {changelog: _release_changelog(changelog, new, date)}
    for name, pattern in TARGETS:
        path = root / name
        text = path.read_text(encoding="utf-8")
        found = pattern.findall(text)
        if len(found) != 1:
            raise BumpError(f"{path}: expected one version line, found {len(found)}")
        old = found[0][1]
        # equal is fine: the files may hold a version never released (the changelog says so)
        if _key(new) < _key(old):
            raise BumpError(f"{path}: version {new} is not after the current {old}")
        texts[path] = pattern.sub(rf"\g<1>{new}\g<3>", text)
    return texts


def _release_changelog(path: Path, new: str, date: dt.date) -> str:
    text = path.read_text(encoding="utf-8")
    if text.count(UNRELEASED) != 1:
        raise BumpError(f"{path}: expected one '{UNRELEASED}' heading")
    if f"## [{new}]" in text:
        raise BumpError(f"{path}: {new} is already released")
    head, rest = text.split(UNRELEASED, 1)
    body, sep, older = rest.partition("\n## [")
    if not body.strip():
        raise BumpError(f"{path}: the Unreleased section is empty: nothing to release")
    return f"{head}{UNRELEASED}\n\n## [{new}] - {date.isoformat()}\n\n{body.strip()}\n" + (
        f"\n## [{older}" if sep else ""
    )


def _key(version: str) -> tuple[int, ...]:
    if not VERSION.fullmatch(version):
        raise BumpError(f"current version {version!r} is not X.Y.Z; fix it by hand first")
    return tuple(int(p) for p in version.split("."))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("version", help="the new version, X.Y.Z")
    ap.add_argument("--date", type=dt.date.fromisoformat, default=dt.date.today(),
                    help="release date, YYYY-MM-DD (default: today)")  # fmt: skip
    ap.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        texts = bump(args.root, args.version, args.date)
    except BumpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
        print(f"updated {path.relative_to(args.root)}")
    files = " ".join(str(p.relative_to(args.root)) for p in texts)
    v = args.version
    print(
        "\nReview the changes (git diff), then commit and tag; nothing was published:\n"
        f"  git add {files}\n"
        f'  git commit -m "Release {v}"\n'
        f'  git tag -a v{v} -m "prepflow {v}"\n'
        f"  git push origin HEAD v{v}    # when the lead is ready to publish"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
