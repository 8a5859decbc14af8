from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol, runtime_checkable

from ..algorithms import Algorithm, Limits


class Executor(Protocol):
    """Runs one algorithm on one set of limits, for any key: what a backend binds once per
    limiter (:meth:`Backend.executor`) and calls for each decision.

    Returns the algorithm's raw result, ``[allowed, then per entry: ok, remaining,
    reset_after_ms, retry_after_ms]``: as a list at once when the backend never waits (it
    cannot fail or time out then, and the limiter needs no time budget, circuit breaker or
    failure policy for it), or else as an awaitable, which raises
    :class:`~glidelimit.BackendError` when the store fails. The limiter may drop the awaitable
    without awaiting it (its circuit breaker is open, or it knows the answer already), so
    nothing may reach the store before it is awaited.
    """

    def __call__(
        self, keys: tuple[bytes, ...], cost: int, mode: int, max_wait: int, holder: bytes, /
    ) -> list[int] | Awaitable[list[int]]: ...


@runtime_checkable
class Backend(Protocol):
    """Where decisions are made: executes an algorithm on the state of a decision's keys.

    A backend knows nothing of HTTP or of Decisions. It belongs to whoever made it: limiters
    never close it.
    """

    @property
    def kind(self) -> str:
        """What metrics call it: ``"memory"``, ``"valkey"``, ``"valkey_cluster"``, or your own."""
        ...

    def executor(self, algorithm: Algorithm, limits: Limits) -> Executor:
        """Bind ``algorithm`` on ``limits``: called once per limiter (and tier)."""
        ...

    async def delete(self, keys: Sequence[bytes]) -> None:
        """Forget the state stored under ``keys``."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources; the backend cannot be used after."""
        ...
