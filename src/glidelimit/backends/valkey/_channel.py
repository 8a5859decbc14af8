"""One event loop's client, and how its calls share round trips."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio

from ..._runtime import spawn
from ._send import Call, send_many, send_one

if TYPE_CHECKING:
    from ._send import Client

# Calls per batch at most: smaller batches keep several in flight, so that the server runs
# one while this process prepares the next.
_BATCH = 32


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

    __slots__ = ("client", "cluster", "gathering", "in_flight", "loop")

    def __init__(self, client: Client, cluster: bool, loop: object) -> None:
        self.client = client
        self.cluster = cluster
        self.loop = loop
        self.gathering: _Batch | None = None  # the batch that calls of this pass join
        self.in_flight = 0  # calls sent and not answered yet

    async def send(self, call: Call) -> list[int]:
        """``call``'s answer."""
        if not self.in_flight:
            self.in_flight = 1
            try:
                return await send_one(self.client, call, self.cluster)
            finally:
                self.in_flight -= 1
        batch = self.gathering
        if batch is None or len(batch.calls) >= _BATCH:
            batch = self.gathering = _Batch()
            spawn(self._flush(batch))  # its first step comes after this pass of the loop
        batch.calls.append(call)
        loop = self.loop
        if isinstance(loop, asyncio.AbstractEventLoop):  # a bare future: the cheapest wait
            waiter = call.waiter = loop.create_future()
            await waiter
        else:
            if batch.done is None:
                batch.done = anyio.Event()
            await batch.done.wait()
        return call.result()

    async def _flush(self, batch: _Batch) -> None:
        if self.gathering is batch:
            self.gathering = None
        calls = batch.calls
        self.in_flight += len(calls)
        try:
            await send_many(self.client, calls, self.cluster)
        finally:
            self.in_flight -= len(calls)
            for call in calls:
                waiter = call.waiter
                if waiter is not None and not waiter.done():  # a cancelled caller's is done
                    waiter.set_result(None)
            if batch.done is not None:
                batch.done.set()
