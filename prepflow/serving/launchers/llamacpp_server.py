"""Child process of the llamacpp launcher: xllamacpp's C++ OpenAI-compatible server, kept alive.

Usage: ``python llamacpp_server.py PARAMS_JSON``, PARAMS_JSON mapping dotted ``CommonParams`` field
names to values. Run by path, not as a module, so it imports nothing of prepflow. The HTTP server
answers 503 while the model loads and 200 on ``/v1/models`` once ready. It exits on SIGTERM, and
on its own when its parent dies (a SIGKILLed run must not leave a model eating the CPU).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def build_params(assignments: dict[str, object]):  # -> xllamacpp.CommonParams
    import xllamacpp

    params = xllamacpp.CommonParams()
    for dotted, value in assignments.items():
        *parents, leaf = dotted.split(".")
        target = params
        for name in parents:
            target = getattr(target, name)
        if isinstance(getattr(target, leaf), set) and isinstance(value, list):
            value = set(value)
        setattr(target, leaf, value)
    return params


def main() -> None:
    import xllamacpp

    parent = os.getppid()
    server = xllamacpp.Server(build_params(json.loads(sys.argv[1])))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"prepflow: llama.cpp server listening on {server.listening_address}", flush=True)
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


if __name__ == "__main__":
    main()
