"""The ``prepflow`` command (also ``python -m prepflow``)."""

from __future__ import annotations

import gc
import sys


def main() -> None:
    """Hand ``prepflow run`` to a warm server (:mod:`prepflow.warm`), or run the CLI here with
    the garbage collector paused while it imports its libraries.

    Start-up creates a few hundred thousand objects that live as long as the process (modules,
    classes, pydantic and Arrow types); collecting over them again and again costs about 0.1 s
    per command. The CLI freezes them out of the collector's sight and turns it back on before
    a command runs (``prepflow.cli._collect_from_here``).
    """
    if sys.argv[1:2] == ["run"]:  # the only command handed over: other commands skip the import
        from prepflow.warm import hand_over

        status = hand_over(sys.argv)
        if status is not None:
            sys.exit(status)
    gc.disable()
    from prepflow.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
