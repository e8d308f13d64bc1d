"""The ``prepflow`` command (also ``python -m prepflow``)."""

from __future__ import annotations

import gc


def main() -> None:
    """Run the CLI with the garbage collector paused while it imports its libraries.

    Start-up creates a few hundred thousand objects that live as long as the process (modules,
    classes, pydantic and Arrow types); collecting over them again and again costs about 0.1 s
    per command. The CLI freezes them out of the collector's sight and turns it back on before
    a command runs (``prepflow.cli._collect_from_here``).
    """
    gc.disable()
    from prepflow.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
