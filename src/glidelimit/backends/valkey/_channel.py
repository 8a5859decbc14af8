"""One event loop's client, and how its calls share round trips."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import anyio

from ..._runtime import spawn
from ._send import Call, send_many, send_one

if TYPE_CHECKING:
    from ._send import Client

# Calls per batch at most: smaller batches keep several in flight, so that the server runs
# one while this process prepares the next. On a cluster a call is a script call of its own
# (calls rarely share a key), and a batch costs glide (and the servers' reads) more than its
# calls do: batches twice as large cost less CPU per decision.
_BATCH = 32
_CLUSTER_BATCH = 64


class _Batch:
    """The calls of one pass of the event loop, sent together by a task of their own."""

    __slots__ = ("calls", "done")

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.done: anyio.Event | None = None  # what callers wait on, but under asyncio


class Channel:
    """A client of one event loop, and the calls it sends.

    A call goes out at once when nothing else is in flight (no pass of the loop to wait for).
    Otherwise it joins the calls made in the same pass of the loop, and a task of their own
    sends them together once the pass is over: a caller that is cancelled only stops
    waiting, and the others get their answers all the same.
    """

    __slots__ = ("client", "cluster", "futures", "gathering", "in_flight", "loop", "most")

    def __init__(self, client: Client, cluster: bool, loop: object) -> None:
        self.client = client
        self.cluster = cluster
        self.loop = loop
        # asyncio's: a call in a batch is a bare future to its caller, the cheapest wait
        self.futures = isinstance(loop, asyncio.AbstractEventLoop)
        self.gathering: _Batch | None = None  # the batch that calls of this pass join
        self.in_flight = 0  # calls sent and not answered yet
        self.most = _CLUSTER_BATCH if cluster else _BATCH

    def send(self, call: Call) -> Awaitable[list[int]]:
        """``call``'s answer, to await; nothing is sent for a call whose awaitable is dropped
        (or cancelled) before this pass of the event loop is over."""
        if self.in_flight and self.futures:
            # no coroutine: a call waiting in a batch is a future and the Call, and no more
            # (thousands wait at once, and the garbage collector visits each of their objects)
            self._gather(call)
            waiter: asyncio.Future[list[int]] = self.loop.create_future()  # type: ignore[attr-defined]
            call.waiter = waiter
            return waiter
        return self._send(call)

    async def _send(self, call: Call) -> list[int]:
        if not self.in_flight:
            self.in_flight = 1
            try:
                return await send_one(self.client, call, self.cluster)
            finally:
                self.in_flight -= 1
        batch = self._gather(call)  # under trio: callers wait on an event of their batch's
        if batch.done is None:
            batch.done = anyio.Event()
        await batch.done.wait()
        return call.result()

    def _gather(self, call: Call) -> _Batch:
        """The batch that ``call`` joins."""
        batch = self.gathering
        if batch is None or len(batch.calls) >= self.most:
            batch = self.gathering = _Batch()
            spawn(self._flush(batch))  # its first step comes after this pass of the loop
        batch.calls.append(call)
        return batch

    async def _flush(self, batch: _Batch) -> None:
        if self.gathering is batch:
            self.gathering = None
        calls = [call for call in batch.calls if not (call.waiter and call.waiter.done())]
        self.in_flight += len(calls)
        try:
            if calls:
                await send_many(self.client, calls, self.cluster, _settle)
        finally:
            self.in_flight -= len(calls)
            _settle(calls)
            if batch.done is not None:
                batch.done.set()


def _settle(calls: list[Call]) -> None:
    """Hand the callers of ``calls`` that still wait their answers (or errors)."""
    for call in calls:
        waiter = call.waiter
        if waiter is not None and not waiter.done():  # a cancelled caller's is done
            if call.value is not None and call.error is None:
                waiter.set_result(call.value)
            else:
                try:
                    call.result()
                except BaseException as exc:
                    waiter.set_exception(exc)
