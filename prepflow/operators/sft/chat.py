"""Conversion of instruction/response pairs to chat messages."""

from __future__ import annotations

from prepflow.core.columns import Column
from prepflow.operators.common.chat import ChatMessages


class ToChatMessages(ChatMessages):
    """Builds a ``messages`` column (``[{role, content}, ...]``) from an instruction and response.

    The chat format SFT trainers read: an optional system message, the user's instruction, the
    assistant's response. The system message is the row's ``system`` column when bound and not
    null, else the ``system_prompt`` parameter, else none. A row with a null instruction or
    response becomes a failure record.
    """

    domain = "sft"
    user, assistant = "instruction", "response"
    inputs = (
        Column("instruction", "string", "the user turn"),
        Column("response", "string", "the assistant turn"),
        Column("system", "string", "a per-row system message", optional=True),
    )
    outputs = (Column("messages", "list<struct>", "chat messages: role and content"),)
