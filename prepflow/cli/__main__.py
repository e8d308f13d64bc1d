"""``python -m prepflow.cli``: the same command as ``prepflow``."""

from prepflow.cli import main

main()
