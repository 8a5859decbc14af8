"""Test doubles for code that uses glidelimit.

>>> from glidelimit import Limiter, MemoryBackend
>>> from glidelimit.testing import ManualClock
>>> clock = ManualClock()
>>> limiter = Limiter("2/minute", backend=MemoryBackend(clock=clock))
>>> clock.advance(60)  # a minute passes, instantly
"""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """A clock for :class:`~glidelimit.MemoryBackend` that moves only when told to.

    Args:
        start: The initial reading, in seconds.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        #: The current reading, in seconds.
        self.now: float = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        self.now += seconds
