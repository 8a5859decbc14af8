"""Waiting for a decision's turn (:meth:`Limiter.acquire`): a reservation where the algorithm
can make one (``gcra``), else retries."""

from __future__ import annotations

import math
import random
import time

import anyio

from ._decision import Decision, RateLimitExceeded
from ._guard import Guard
from ._quota import Quota, decode
from ._runtime import Spawned, spawn
from .algorithms import Mode

_HIT, _RESERVE = int(Mode.HIT), int(Mode.RESERVE)


async def acquire(
    guard: Guard, quota: Quota, keys: tuple[bytes, ...], cost: int, timeout: float | None
) -> Decision:
    """The decision that allows ``cost`` on ``keys``, once it does (within ``timeout``).

    Raises:
        RateLimitExceeded: If it cannot be allowed within ``timeout`` seconds, and at once
            if it never can.
    """
    if quota.algorithm.reservable:
        return await _reserve(guard, quota, keys, cost, timeout)
    return await _retry(guard, quota, keys, cost, timeout)


async def _retry(
    guard: Guard, quota: Quota, keys: tuple[bytes, ...], cost: int, timeout: float | None
) -> Decision:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        decision = await guard.decide(quota, keys, cost, _HIT)
        if decision.allowed:
            return decision
        if math.isinf(decision.retry_after):
            raise RateLimitExceeded(decision)
        # jitter, so that waiters denied together do not all come back together
        wait = decision.retry_after * (1 + 0.1 * random.random())
        if deadline is not None:
            left = deadline - time.monotonic()
            if decision.retry_after > left:
                raise RateLimitExceeded(decision)
            wait = min(wait, left)
        await anyio.sleep(wait)


async def _reserve(
    guard: Guard, quota: Quota, keys: tuple[bytes, ...], cost: int, timeout: float | None
) -> Decision:
    forever = timeout is None or math.isinf(timeout)
    max_wait = -1 if forever else int(timeout * 1000)  # type: ignore[operator]

    def give_back(raw: list[int]) -> None:  # for a reservation whose waiter is gone
        if raw[0] == 1:
            _send_back(guard, quota, keys, cost)

    answer = quota.execute(keys, cost, _RESERVE, max_wait, b"")
    if isinstance(answer, list):
        decision = decode(answer, quota.limits)
    else:
        decision = await guard.settle(quota, answer, keys, cost, _RESERVE, max_wait, undo=give_back)
    if not decision.allowed:
        raise RateLimitExceeded(decision)
    try:
        await anyio.sleep(decision.retry_after)
    except BaseException:
        if not decision.degraded:  # a degraded decision reserved nothing
            await _give_back(guard, quota, keys, cost)
        raise
    return decision._replace(
        retry_after=0.0, reset_after=max(decision.reset_after - decision.retry_after, 0.0)
    )


async def _give_back(guard: Guard, quota: Quota, keys: tuple[bytes, ...], cost: int) -> None:
    """Give a reservation back, and wait for it unless cancelled again."""
    sent = _send_back(guard, quota, keys, cost)
    if sent is not None:
        with anyio.CancelScope(shield=True):
            await sent.wait()


def _send_back(
    guard: Guard, quota: Quota, keys: tuple[bytes, ...], cost: int
) -> Spawned[list[int] | None] | None:
    """Give a reservation back, on a task of its own that no cancellation cuts short (None: it
    was given back at once)."""
    answer = quota.execute(keys, -cost, _HIT, -1, b"")
    if isinstance(answer, list):
        return None
    return spawn(guard.quietly(answer, "give a reservation back"))
