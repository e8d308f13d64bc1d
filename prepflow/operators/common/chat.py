"""Chat messages from a user turn and an assistant turn: the one converter every domain uses."""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
from pydantic import Field

from prepflow.core.operator import GenerateOperator, Params, Result, failure_rows
from prepflow.core.tables import set_column, take_rows

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


class ChatParams(Params):
    system_prompt: str | None = Field(
        None, description="system message for rows without a 'system' value"
    )


class ChatMessages(GenerateOperator):
    """Builds ``messages`` (``[{role, content}, ...]``): an optional system message, the user
    turn, the assistant turn. The system message is the row's ``system`` column when bound and
    not null, else the ``system_prompt`` parameter, else none. A row whose user or assistant
    turn is null becomes a failure record."""

    abstract = True
    #: the declared input columns holding the user and the assistant turn
    user: ClassVar[str]
    assistant: ClassVar[str]
    Params = ChatParams

    def run_batch(self, batch: pa.Table) -> Result:
        users = batch.column(self.col(self.user)).to_pylist()
        answers = batch.column(self.col(self.assistant)).to_pylist()
        name = self.col("system")
        systems = (
            batch.column(name).to_pylist() if name in batch.column_names else [None] * len(users)
        )
        messages, ok, failed, errors = [], [], [], []
        for i, (user, answer, system) in enumerate(zip(users, answers, systems, strict=True)):
            if user is None or answer is None:
                failed.append(i)
                missing = self.col(self.user) if user is None else self.col(self.assistant)
                errors.append(f"column {missing!r} is null")
                continue
            system = system if system is not None else self.params.system_prompt
            head = [] if system is None else [{"role": "system", "content": system}]
            messages.append(
                [*head, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            )
            ok.append(i)
        kept = set_column(
            take_rows(batch, ok), self.col("messages"), pa.array(messages, pa.list_(MESSAGE))
        )
        bad = failure_rows(take_rows(batch, failed), "NullInput", errors) if failed else None
        return Result(kept=kept, failed=bad)
