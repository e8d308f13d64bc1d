"""Conversion of instruction/response pairs to chat messages."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from prepflow.core.columns import Column
from prepflow.core.operator import GenerateOperator, Params, Result, failure_rows

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])


class ToChatMessages(GenerateOperator):
    """Builds a ``messages`` column (``[{role, content}, ...]``) from an instruction and response.

    The chat format SFT trainers read: an optional system message, the user's instruction, the
    assistant's response. The system message is the row's ``system`` column when bound and not
    null, else the ``system_prompt`` parameter, else none. A row with a null instruction or
    response becomes a failure record.
    """

    domain = "sft"
    inputs = (
        Column("instruction", "string", "the user turn"),
        Column("response", "string", "the assistant turn"),
        Column("system", "string", "a per-row system message", optional=True),
    )
    outputs = (Column("messages", "list<struct>", "chat messages: role and content"),)

    class Params(Params):
        system_prompt: str | None = Field(
            None, description="system message for rows without a 'system' value"
        )

    def run_batch(self, batch: pa.Table) -> Result:
        users = batch.column(self.col("instruction")).to_pylist()
        answers = batch.column(self.col("response")).to_pylist()
        name = self.col("system")
        systems = (
            batch.column(name).to_pylist() if name in batch.column_names else [None] * len(users)
        )
        messages, ok, failed, errors = [], [], [], []
        for i, (user, answer, system) in enumerate(zip(users, answers, systems, strict=True)):
            if user is None or answer is None:
                failed.append(i)
                missing = self.col("instruction") if user is None else self.col("response")
                errors.append(f"column {missing!r} is null")
                continue
            system = system if system is not None else self.params.system_prompt
            head = [] if system is None else [{"role": "system", "content": system}]
            messages.append(
                [*head, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            )
            ok.append(i)
        kept = batch.take(pa.array(ok, pa.int64()))
        out = self.col("messages")
        column = pa.array(messages, pa.list_(MESSAGE))
        if out in kept.column_names:
            kept = kept.set_column(kept.column_names.index(out), out, column)
        else:
            kept = kept.append_column(out, column)
        bad = (
            failure_rows(batch.take(pa.array(failed, pa.int64())), "NullInput", errors)
            if failed
            else None
        )
        return Result(kept=kept, failed=bad)
