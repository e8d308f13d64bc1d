"""`prepflow sandbox ...`: which protections are active here, and running one file sandboxed.

Mounted by the main CLI as ``app.add_typer(sandbox_app, name="sandbox")``; only typer is
imported at the top.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

sandbox_app = typer.Typer(
    help="The sandbox for untrusted code: check its protections, run a file in it.",
    no_args_is_help=True,
)


@sandbox_app.command("check")
def check_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Verify each protection from inside a sandboxed probe; exit 1 if any is missing."""
    from prepflow.sandbox import SandboxError, open_sandbox
    from prepflow.sandbox.check import check

    try:
        with open_sandbox(workers=1) as sandbox:
            findings = check(sandbox)
            mode = "namespaces (bubblewrap)" if sandbox.namespaces else "rlimits only (FALLBACK)"
    except (SandboxError, RuntimeError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    missing = [f.protection for f in findings if not f.active]
    if as_json:
        out = {"mode": mode, "findings": [f.__dict__ for f in findings], "missing": missing}
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(f"sandbox mode: {mode}")
        for f in findings:
            mark = typer.style("yes", fg="green") if f.active else typer.style("NO ", fg="red")
            typer.echo(f"  {mark}  {f.protection:<8} {f.evidence}")
        if missing:
            typer.secho(
                f"missing: {', '.join(missing)}; strict mode (sandbox: {{strict: true}}) "
                "refuses to run here",
                fg=typer.colors.RED,
            )
    raise typer.Exit(1 if missing else 0)


@sandbox_app.command("run")
def run_cmd(
    file: Annotated[Path, typer.Argument(help="A Python file (.py) or an executable script.")],
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Wall-clock and CPU seconds.")
    ] = 10.0,
    memory_mb: Annotated[int, typer.Option("--memory-mb", help="Address space in MiB.")] = 512,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse to run unless every protection is active.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the result.")
    ] = False,
) -> None:
    """Run FILE in the sandbox and print what it did; exits with the program's exit code."""
    from dataclasses import asdict

    from prepflow.core.context import Limits
    from prepflow.sandbox import SandboxError, open_sandbox

    try:
        content = file.read_bytes()
    except OSError as e:
        typer.secho(f"error: {file}: {e.strerror}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    try:
        limits = Limits(wall_s=time_limit, cpu_s=time_limit, memory_mb=memory_mb)
        with open_sandbox(strict=strict, limits=limits, workers=1) as sandbox:
            if file.suffix == ".py":
                result = sandbox.run_python(content.decode(errors="replace"))
            else:
                result = sandbox.run_command(
                    ["/bin/sh", "-c", f"chmod +x ./{file.name} && exec ./{file.name}"],
                    files={file.name: content},
                )
    except (SandboxError, ValueError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if as_json:
        out = asdict(result)
        out["status"] = str(result.status)
        typer.echo(json.dumps(out))
    else:
        typer.echo(result.stdout, nl=False)
        typer.echo(result.stderr, nl=False, err=True)
        cut = [
            f"{name} cut to {len(text.encode())} of {size} bytes"
            for name, text, size in (
                ("stdout", result.stdout, result.stdout_bytes),
                ("stderr", result.stderr, result.stderr_bytes),
            )
            if size > len(text.encode())
        ]
        typer.secho(
            f"[sandbox] {result.status} exit={result.exit_code} {result.duration_s:.3f}s "
            f"peak={result.peak_memory_mb} MiB" + (f" ({'; '.join(cut)})" if cut else ""),
            fg=typer.colors.GREEN if result.ok else typer.colors.RED,
            err=True,
        )
    raise typer.Exit(result.exit_code if result.exit_code is not None else 1)
