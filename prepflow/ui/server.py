"""Serving the dashboard: uvicorn on loopback unless told otherwise, answering only for the
host names it was bound to."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from prepflow.ui.app import LOOPBACK, create_app

DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> tuple[str, ...]:
    """The Host headers to answer: loopback names; the bound name too; any for a wildcard
    address (the machine's names are not known)."""
    if host in ("0.0.0.0", "::", ""):
        return ("*",)
    return LOOPBACK if is_loopback(host) else (host, *LOOPBACK)


def serve(runs_dir: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve the dashboard until interrupted."""
    import uvicorn

    app = create_app(runs_dir, allowed_hosts(host))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
