from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..algorithms import Algorithm, Request


@runtime_checkable
class Backend(Protocol):
    """Where decisions are made: executes an algorithm on the state of a request's keys.

    A backend knows nothing of HTTP or of Decisions: it returns the algorithm's raw result
    (``[allowed, then per rate: ok, remaining, reset_after_ms, retry_after_ms]``) and raises
    :class:`~glidelimit.BackendError` when its store fails.
    """

    async def execute(self, algorithm: Algorithm, request: Request) -> list[int]:
        """Run ``algorithm`` on ``request`` atomically and return its raw result."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Forget the state stored under ``keys``."""
        ...

    async def aclose(self) -> None:
        """Release connections and other resources."""
        ...
