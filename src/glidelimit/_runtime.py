"""What glidelimit needs of the event loop beyond anyio: work that no caller's cancellation
cuts short, under asyncio and trio alike.

A cancelled caller must not take others down with it (a batch that several callers wait on),
nor lose track of what the server did for it (a reservation to give back). So such work runs
as a task of its own, and callers wait for it instead of running it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

import anyio.lowlevel

T = TypeVar("T")
logger = logging.getLogger("glidelimit")

# asyncio keeps only weak references to tasks: these are kept here until they are done
_running: set[asyncio.Task[Any]] = set()


def running_loop() -> object:
    """The running event loop (asyncio's loop, or trio's run token)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return anyio.lowlevel.current_token().native_token


def spawn(coro: Coroutine[Any, Any, T]) -> Spawned[T]:
    """Run ``coro`` as a task of its own, which the caller's cancellation does not reach."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _TrioSpawned(coro)
    return _AsyncioSpawned(loop, coro)


class Spawned(Generic[T]):
    """A coroutine running on its own: wait for its result, or have it handed on."""

    async def wait(self) -> T:
        """Its result (or its exception); cancelling this wait does not cancel it."""
        raise NotImplementedError

    def then(self, callback: Callable[[T], object]) -> None:
        """Call ``callback`` with its result once it has one (not if it raised)."""
        raise NotImplementedError


class _AsyncioSpawned(Spawned[T]):
    __slots__ = ("_task",)

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> None:
        task = self._task = loop.create_task(coro)
        _running.add(task)
        task.add_done_callback(_running.discard)

    def wait(self) -> Awaitable[T]:  # type: ignore[override]
        return asyncio.shield(self._task)

    def then(self, callback: Callable[[T], object]) -> None:
        def done(task: asyncio.Task[T]) -> None:
            if not task.cancelled() and task.exception() is None:
                callback(task.result())

        self._task.add_done_callback(done)


class _TrioSpawned(Spawned[T]):
    __slots__ = ("_callbacks", "_done", "_error", "_value")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        import trio

        self._done = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[T], object]] = []
        trio.lowlevel.spawn_system_task(self._run, coro)

    async def _run(self, coro: Coroutine[Any, Any, T]) -> None:
        try:
            self._value = await coro
        except BaseException as exc:  # a system task must not raise: it would end the run
            self._error = exc
        self._done.set()
        if self._error is None:
            for callback in self._callbacks:
                try:
                    callback(self._value)  # type: ignore[arg-type]
                except Exception:  # a system task must not raise: it would end the run
                    logger.exception("a callback of glidelimit's failed")

    async def wait(self) -> T:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def then(self, callback: Callable[[T], object]) -> None:
        if not self._done.is_set():
            self._callbacks.append(callback)
        elif self._error is None:
            callback(self._value)  # type: ignore[arg-type]
