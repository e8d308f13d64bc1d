"""`prepflow ui`: the run dashboard, a local read-only web app (needs the `ui` extra)."""

import importlib.util
from pathlib import Path
from typing import Annotated

import typer


def ui(
    runs_dir: Annotated[
        Path, typer.Argument(help="Folder of run directories (or one run directory).")
    ] = Path("runs"),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8765,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; anything but loopback exposes your runs to the network."
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve the run dashboard: runs (live), funnels, drop reasons with threshold what-ifs, row
    lineage, failures, comparisons, the pipeline and its YAML checked as you type."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        typer.secho(
            f"error: the dashboard needs {', '.join(missing)}: pip install 'prepflow[ui]'",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    from prepflow.ui.server import is_loopback, serve

    if not runs_dir.is_dir():
        typer.secho(f"error: {runs_dir}: no such folder", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if not is_loopback(host):
        typer.secho(
            f"warning: listening on {host}: anyone who can reach this machine can read these "
            "runs (their data, prompts and answers); the dashboard has no login",
            fg=typer.colors.YELLOW,
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"prepflow dashboard on http://{shown}:{port}/ for {runs_dir.resolve()} (Ctrl-C stops it)"
    )
    serve(runs_dir, host=host, port=port)
