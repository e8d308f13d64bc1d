"""Where an input or output lives: a plain local path is served by the standard library, any
other URL (``s3://``, ``hf://``, ``file://``, chained URLs) by fsspec, imported only for it.

Importing fsspec (its caching, compression and registry modules, and a scan of every installed
package's entry points) takes about 20 ms of a run's start-up: more than a one-step pipeline's
own work on 1,000 rows, and most runs read and write plain local files.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import fsspec


def is_plain(url: str) -> bool:
    """Whether ``url`` is a path on this machine with no protocol, as fsspec reads it."""
    protocol, sep, _ = url.partition("://")
    remote = sep and len(protocol) > 1  # one letter before "://": a Windows drive
    return not remote and "::" not in url and not url.startswith("data:")


def is_glob(url: str) -> bool:
    """Whether ``url`` is a pattern (``*``, ``?``, ``[``) rather than one path."""
    return any(c in url for c in "*?[")


def plain_path(url: str) -> str:
    """The absolute path of the plain local path ``url``, as fsspec's local filesystem names it
    (home expanded, not normalised, no trailing ``/``)."""
    if url.startswith("~"):
        url = os.path.expanduser(url)
    elif not url.startswith("/"):
        url = os.getcwd() if url == "." else f"{os.getcwd()}/{url.removeprefix('./')}"
    return url.rstrip("/") or "/"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec's filesystem for ``url``, and the path on it (imports fsspec)."""
    import fsspec  # see the module docstring

    return fsspec.core.url_to_fs(url)


def local_filesystem() -> fsspec.AbstractFileSystem:
    """fsspec's local filesystem (imports fsspec)."""
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem()


def is_local_filesystem(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is fsspec's local filesystem."""
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def is_local(url: str) -> bool:
    """Whether ``url`` names a file on this machine: a plain path, or a URL that fsspec serves
    from the local filesystem (``file://``)."""
    return is_plain(url) or is_local_filesystem(filesystem(url)[0])


def local_path(url: str) -> str:
    """The absolute path of a local ``url`` (:func:`is_local`)."""
    return plain_path(url) if is_plain(url) else filesystem(url)[1]
