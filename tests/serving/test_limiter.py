"""AdaptiveLimiter: bounded slots, FIFO hand-over, AIMD on sustained push-back, Retry-After pauses."""

from __future__ import annotations

import asyncio
import time

import pytest

from prepflow.serving.limiter import AdaptiveLimiter


def test_slots_are_bounded_and_handed_over_in_arrival_order():
    async def main() -> list[int]:
        lim = AdaptiveLimiter(2)
        order: list[int] = []
        await lim.acquire()
        await lim.acquire()

        async def waiter(i: int) -> None:
            await lim.acquire()
            order.append(i)

        tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        assert (order, lim.in_flight) == ([], 2)
        lim.release(0, ok=True)
        await asyncio.sleep(0.01)
        lim.release(0, ok=True)
        await asyncio.sleep(0.01)
        assert (order, lim.in_flight) == ([0, 1], 2)
        lim.release(0, ok=True)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == [0, 1, 2]


def test_retries_are_handed_slots_before_first_attempts():
    async def main() -> list[str]:
        lim = AdaptiveLimiter(1)
        order: list[str] = []
        await lim.acquire()

        async def waiter(name: str, retry: bool) -> None:
            await lim.acquire(retry=retry)
            order.append(name)
            lim.release(0, ok=True)

        tasks = [asyncio.create_task(waiter(f"first {i}", False)) for i in range(3)]
        await asyncio.sleep(0.01)
        tasks += [asyncio.create_task(waiter(f"retry {i}", True)) for i in range(2)]
        await asyncio.sleep(0.01)
        lim.release(0, ok=True)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == ["retry 0", "retry 1", "first 0", "first 1", "first 2"]


def test_pushback_halves_once_per_round_and_successes_grow_back():
    async def main() -> None:
        lim = AdaptiveLimiter(8)
        rounds = [await lim.acquire() for _ in range(8)]
        for r in rounds:  # a whole wave of 429s from requests started in the same round
            lim.release(r, ok=False, pushback=True)
        assert (lim.cap, lim.in_flight) == (4, 0)
        r = await lim.acquire()
        lim.release(r, ok=False, pushback=True)  # a request of the new round halves again
        assert lim.cap == 2
        for _ in range(100):
            lim.release(await lim.acquire(), ok=True)
        assert lim.cap == 8  # recovered, and never above the maximum
        assert lim.limit == 8.0

    asyncio.run(main())


def test_halving_stops_at_the_minimum():
    async def main() -> None:
        lim = AdaptiveLimiter(4, minimum=2)
        for _ in range(5):
            lim.release(await lim.acquire(), ok=False, pushback=True)
        assert lim.cap == 2

    asyncio.run(main())


def test_retry_after_pauses_every_new_request():
    async def main() -> float:
        lim = AdaptiveLimiter(4)
        lim.release(await lim.acquire(), ok=False, pushback=True, retry_after=0.3)
        start = time.monotonic()
        await asyncio.gather(lim.acquire(), lim.acquire())
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.3 - 0.01  # timer granularity


def test_cancelled_waiter_leaks_no_slot():
    async def main() -> None:
        lim = AdaptiveLimiter(1)
        await lim.acquire()
        waiter = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        lim.release(0, ok=True)
        await asyncio.wait_for(lim.acquire(), 1)
        assert lim.in_flight == 1

    asyncio.run(main())


def test_bounds_are_checked():
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimiter(2, minimum=3)


def test_sporadic_pushback_neither_shrinks_nor_pauses_but_sustained_pushback_does():
    async def main() -> None:
        lim = AdaptiveLimiter(32)
        for i in range(200):  # 1 answer in 20 is a 429: 5% is below the tolerance
            lim.release(await lim.acquire(), ok=i % 20 != 7, pushback=i % 20 == 7, retry_after=5)
        assert (lim.cap, lim.overloaded) == (32, False)
        start = time.monotonic()
        await asyncio.wait_for(lim.acquire(), 1)  # no Retry-After pause either
        assert time.monotonic() - start < 0.1
        lim.release(0, ok=True)
        for _ in range(10):  # then most answers are 429s: back off
            lim.release(await lim.acquire(), ok=False, pushback=True)
        assert lim.overloaded and lim.cap < 32

    asyncio.run(main())
