"""Why an LLM request produced no usable answer, with what a failure record needs.

Every error carries ``error_type`` (its class name), ``attempts`` (requests made for it) and the
``raw`` response text when the server answered. ``retryable`` errors are retried with backoff
before they surface; the others surface at once.
"""

from __future__ import annotations

from typing import ClassVar

from prepflow.core.errors import PrepflowError


class ServingError(PrepflowError):
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        attempts: int = 1,
        raw: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts, self.raw, self.status = attempts, raw, status
        #: Seconds the server asked to wait before retrying (``Retry-After``), if it said.
        self.retry_after = retry_after

    @property
    def error_type(self) -> str:
        return type(self).__name__


class RateLimited(ServingError):
    """HTTP 429."""

    retryable = True


class ServerError(ServingError):
    """HTTP 5xx but 501/505 (which say the server will never do it)."""

    retryable = True


class RequestTimeout(ServingError):
    """No complete answer within the timeout (or HTTP 408)."""

    retryable = True


class ConnectionFailed(ServingError):
    """Refused, reset or dropped connection."""

    retryable = True


class MalformedResponse(ServingError):
    """HTTP 200 whose body is not an OpenAI-shaped JSON response."""

    retryable = True


class RequestRejected(ServingError):
    """HTTP 4xx other than 408/429, or 501/505: the request itself is wrong (or the server does
    not implement it), so it is not retried."""


class InvalidOutput(ServingError):
    """The model answered, but not with JSON valid for the schema, even after re-asking."""


class TruncatedOutput(InvalidOutput):
    """The answer stopped at the token limit (``finish_reason == "length"``), even after re-asking."""
