"""Time budgets for waits on a backend, cheap enough to give every decision one."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

_WAITING, _DONE, _EXPIRED = 0, 1, 2


class Budget:
    """Ends waits that last longer than ``seconds``.

    Under asyncio it costs one timer for many waits, not one each (a timer per wait, as
    ``asyncio.timeout`` makes, costs more than a decision's own work). Waits on one budget
    end in the order they start, so they queue; one timer, armed for the oldest that still
    waits, cancels the task of each wait whose time is up, and that task takes the
    cancellation back, as ``asyncio.timeout`` does::

        watch = budget.start()
        try:
            await something
        except asyncio.CancelledError:
            if budget.expired(watch):
                ...  # the budget's own: it was taken back
            raise
        finally:
            budget.end(watch)

    Under trio, :meth:`start` returns None: use ``anyio.fail_after(budget.seconds)``.
    """

    __slots__ = ("_last", "_queues", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._queues: dict[object, _Queue] = {}
        self._last: tuple[object, _Queue] | None = None  # the last loop's queue, found fast

    def start(self) -> list[Any] | None:
        """Start timing the current task's wait (None under trio)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        last = self._last
        if last is not None and last[0] is loop:
            queue = last[1]
        else:
            found = self._queues.get(loop)
            if found is not None:
                queue = found
            else:
                if len(self._queues) > 64:  # loops come and go (a thread's asyncio.run())
                    self._queues.clear()
                queue = self._queues[loop] = _Queue(self.seconds)
            self._last = (loop, queue)
        return queue.watch(loop)

    @staticmethod
    def expired(watch: list[Any]) -> bool:
        """Whether the cancellation the task met is the budget's own; if so, it is taken back
        (unless the task was cancelled by someone else too: then that one goes on)."""
        if watch[2] != _EXPIRED:
            return False
        uncancel = getattr(watch[1], "uncancel", None)  # Python 3.11+
        return uncancel is None or uncancel() == 0

    @staticmethod
    def end(watch: list[Any]) -> None:
        """The wait is over."""
        if watch[2] == _WAITING:
            watch[2] = _DONE


class _Queue:
    """The waits of one budget on one event loop, oldest first: ``[deadline, task, state]``."""

    __slots__ = ("armed", "entries", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entries: deque[list[Any]] = deque()
        self.armed = False

    def watch(self, loop: asyncio.AbstractEventLoop) -> list[Any]:
        entries = self.entries
        while entries and entries[0][2] != _WAITING:  # the finished ones at the head
            entries.popleft()
        deadline = loop.time() + self.seconds
        entry = [deadline, asyncio.current_task(), _WAITING]
        entries.append(entry)
        if not self.armed:
            self.armed = True
            loop.call_at(deadline, self._fire, loop)
        return entry

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        entries = self.entries
        late = now - entries[0][0] if entries else 0.0
        if late > self.seconds / 2:
            # The timer itself ran late: the event loop was held up, by the application and
            # not by the backend (answers that came meanwhile are still to be read, calls
            # still to be sent). The waits get their budget again, from now.
            for entry in entries:
                entry[0] = now + self.seconds
            loop.call_at(entries[0][0], self._fire, loop)
            return
        while entries:
            entry = entries[0]
            if entry[2] == _WAITING:
                if entry[0] > now:
                    loop.call_at(entry[0], self._fire, loop)
                    return
                entry[2] = _EXPIRED
                entry[1].cancel()
            entries.popleft()
        self.armed = False
