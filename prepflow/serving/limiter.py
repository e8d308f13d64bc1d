"""Adaptive cap on requests in flight: back off when the server pushes back, recover after.

Additive increase, multiplicative decrease (as TCP does): each success raises the cap by
``1/cap`` (about one slot per round of answers) up to the configured concurrency. Push-back
(429/503, or no answer within the timeout: a server queueing more requests than it decodes) counts
when it is *sustained*: when more than :data:`PUSHBACK_TOLERANCE` of the recent
answers are push-backs, a push-back halves the cap (at most once per round, so a burst of 429s
from one wave of requests counts once) and its ``Retry-After`` pauses every new request, not only
the one that got it. Below that share a 429 costs only its own retry (which waits its
``Retry-After``): sporadic rate limiting must not collapse throughput (measured: 5% random 429s
held a 32-slot client at about 6 slots, 8x slower, when every 429 counted).
Slots are handed to waiters in arrival order, retries first: a retry has already waited its
``Retry-After``, and at the back of a long queue it would wait that queue too, holding back its
row and every step after it (measured: the slowest rows of a 4,000-request pipeline).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

#: Share of the recent answers that may be push-backs before the limiter backs off. Real
#: overload refuses most requests; 5% random 429s exceed 20% of a 32-answer window with
#: probability 0.0005.
PUSHBACK_TOLERANCE = 0.2
#: Recent answers the share is taken over (at least; the configured concurrency if larger).
PUSHBACK_WINDOW = 32


class AdaptiveLimiter:
    def __init__(self, maximum: int, minimum: int = 1) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum ({minimum}) <= maximum ({maximum})")
        self.maximum, self.minimum = maximum, minimum
        self.limit = float(maximum)
        self.in_flight = 0
        self._round = 0  # bumped at each decrease; requests started before it do not decrease again
        self._not_before = 0.0  # time.monotonic() before which nothing starts (Retry-After)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._retries: deque[asyncio.Future[None]] = deque()  # served before _waiters
        self._timer: asyncio.TimerHandle | None = None
        self._window = max(PUSHBACK_WINDOW, maximum)
        self._recent: deque[bool] = deque(maxlen=self._window)  # was each answer a push-back?
        self._pushbacks = 0  # True values in _recent

    @property
    def cap(self) -> int:
        return max(self.minimum, int(self.limit))

    def _can_start(self) -> bool:
        return self.in_flight < self.cap and time.monotonic() >= self._not_before

    async def acquire(self, *, retry: bool = False) -> int:
        """Wait for a slot (a ``retry`` goes ahead of first attempts); returns the round to hand
        back to :meth:`release`."""
        queue = self._retries if retry else self._waiters
        if not self._retries and (retry or not self._waiters) and self._can_start():
            self.in_flight += 1
            return self._round
        fut = asyncio.get_running_loop().create_future()
        queue.append(fut)
        self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # a slot was handed over: give it back
                self.in_flight -= 1
                self._wake()
            else:
                queue.remove(fut)
            raise
        return self._round

    def release(
        self, round_: int, *, ok: bool, pushback: bool = False, retry_after: float | None = None
    ) -> None:
        """Free a slot. ``ok``: the server answered; ``pushback``: it asked us to slow down."""
        self.in_flight -= 1
        if ok or pushback:
            self._remember(pushback)
        if pushback and self.overloaded:
            if round_ == self._round:
                self.limit = max(float(self.minimum), self.limit / 2)
                self._round += 1
            if retry_after:
                self._not_before = max(self._not_before, time.monotonic() + retry_after)
        elif ok:
            self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
        self._wake()

    @property
    def overloaded(self) -> bool:
        """More push-backs than the tolerated share of a full window, or nothing but push-backs
        so far (before any success there is no evidence that the server copes)."""
        return self._pushbacks > PUSHBACK_TOLERANCE * self._window or 0 < self._pushbacks == len(
            self._recent
        )

    def _remember(self, pushback: bool) -> None:
        if len(self._recent) == self._window:
            self._pushbacks -= self._recent[0]
        self._recent.append(pushback)
        self._pushbacks += pushback

    def _wake(self) -> None:
        while (self._retries or self._waiters) and self._can_start():
            fut = (self._retries or self._waiters).popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)
        pause = self._not_before - time.monotonic()
        if (self._retries or self._waiters) and pause > 0 and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(pause, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()
