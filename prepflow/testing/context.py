"""A RunContext for tests: whatever serving, sandbox and databases the test hands it."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa

from prepflow.core.context import Database, Sandbox, Serving
from prepflow.core.errors import ConfigError
from prepflow.data.readers import open_input


class FakeContext:
    """Satisfies :class:`prepflow.core.context.RunContext` for an operator under test.

    ``serving``/``sandbox`` are used as given (a missing one raises the error the engine would);
    ``databases`` maps a source to a :class:`Database` or to a ``(source, db_id) -> Database``
    opener; side inputs are read with the real readers.
    """

    def __init__(
        self,
        *,
        serving: Serving | None = None,
        sandbox: Sandbox | None = None,
        databases: Mapping[str, Database | Callable[[str, str | None], Database]] | None = None,
        scratch_dir: Path | None = None,
        seed: int = 0,
    ) -> None:
        self._serving, self._sandbox = serving, sandbox
        self._databases = dict(databases or {})
        self._scratch = scratch_dir
        self._seed = seed

    @property
    def serving(self) -> Serving:
        if self._serving is None:
            raise ConfigError("this step needs an LLM: add a 'serving:' section to the pipeline")
        return self._serving

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise ConfigError("this step needs the sandbox, and the test gave none")
        return self._sandbox

    def database(self, source: str, db_id: str | None = None) -> Database:
        found = self._databases.get(source)
        if found is None:
            raise ConfigError(f"no database {source!r} in this test context")
        return found(source, db_id) if callable(found) else found

    def side_input(self, source: str, *, batch_rows: int = 65536) -> Iterator[pa.Table]:
        return open_input(source).iter_batches(batch_rows)

    @property
    def scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="prepflow-test-"))
        return self._scratch

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger("prepflow.test")

    @property
    def seed(self) -> int:
        return self._seed
