"""`prepflow warm ...`: the warm servers that start `prepflow run` without its imports
(:mod:`prepflow.warm`). Mounted by the main CLI as ``app.add_typer(warm_app, name="warm")``."""

import time

import typer

warm_app = typer.Typer(
    help="Warm servers: `prepflow run` forked from a process that has its libraries loaded.",
    no_args_is_help=True,
)


@warm_app.command()
def status() -> None:
    """List this user's warm servers: process, commands served and running, idle limit."""
    from prepflow import warm

    if not warm.enabled():
        typer.echo(f"warm start is off: {warm.ENV} is set to a value that turns it off")
    answers = [a for path in warm.servers() if (a := warm.ask(path, "status"))]
    if not answers:
        typer.echo("no warm server running; the next `prepflow run` starts one")
    for a in answers:
        age = time.time() - a["started"]
        typer.echo(
            f"pid {a['pid']}: up {age:,.0f} s, served {a['served']}, running {a['running']}, "
            f"{a['modules']} modules loaded, stops after {a['idle_s']:,.0f} s idle"
        )


@warm_app.command()
def stop() -> None:
    """Stop this user's warm servers (each ends once the commands it runs have ended)."""
    from prepflow import warm

    stopped = [a for path in warm.servers() if (a := warm.ask(path, "stop"))]
    typer.echo(f"stopped {len(stopped)} warm server{'s' * (len(stopped) != 1)}")
