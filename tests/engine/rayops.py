"""Operators for the Ray executor's tests; the cluster's workers import them (pipelines list this
file under ``imports:``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from prepflow.core import Column, Params, RefineOperator


class RayNodeTrace(RefineOperator):
    """Pass rows through; note the Ray node that ran each batch (a file per node in the step's
    scratch directory) and, once, SIGKILL the worker process running it."""

    domain = "test"
    inputs = (Column("text", "string"),)
    outputs = (Column("text", "string"),)

    class Params(Params):
        kill_once: str = Field(
            "", description="a marker file: when it does not exist, create it and kill this process"
        )

    def setup(self, ctx: Any) -> None:
        self._scratch = ctx.scratch_dir

    def process(self, batch: pa.Table) -> pa.Table:
        import ray

        (self._scratch / f"node-{ray.get_runtime_context().get_node_id()}").touch()
        marker = self.params.kill_once
        if marker and not Path(marker).exists():
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return batch
