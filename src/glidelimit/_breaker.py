"""CircuitBreaker: stop asking a backend that keeps failing, and probe it again soon.

A decision already waits at most its time budget; the breaker keeps even that wait from being
paid by every caller while the backend is known to be down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ._errors import BackendError, ConfigurationError


class CircuitBreaker:
    """Skips the backend after ``failures`` failures in a row, for ``cooldown`` seconds.

    Closed, every decision goes to the backend. After ``failures`` consecutive failures it
    opens: decisions are made by the failure policy at once, with no round trip. Once
    ``cooldown`` has passed, one decision goes to the backend as a probe while the others still
    skip it; the probe's success closes the breaker, its failure opens it for another
    ``cooldown``. A probe that never reports (cancelled) is replaced after ``cooldown``.

    One breaker may be shared by the limiters of one backend, so that they open together.

    Args:
        failures: Consecutive failures that open the breaker (a positive integer).
        cooldown: Seconds between probes while open; with the default time budget and glide's
            reconnection settings, a backend that is back is noticed within about a second.
        clock: Seconds from a monotonic source; inject a fake one in tests.

    Raises:
        ConfigurationError: If ``failures`` or ``cooldown`` is not valid.
    """

    def __init__(
        self,
        failures: int = 3,
        cooldown: float = 0.25,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ConfigurationError(
                f"breaker failures must be a positive integer, got {failures!r}"
            )
        if (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, (int, float))
            or not 0 < cooldown < math.inf
        ):
            raise ConfigurationError(
                f"breaker cooldown must be a positive number of seconds, got {cooldown!r}"
            )
        self.failures: int = failures
        self.cooldown: float = float(cooldown)
        self._clock = clock
        self._failed = 0  # consecutive failures
        self._skip_until = -math.inf  # while open: no call before this instant
        self.last_error: BackendError | None = None

    @property
    def open(self) -> bool:
        """Whether the backend is being skipped (probes aside)."""
        return self._failed >= self.failures

    def attempt(self) -> bool:
        """Whether this call may go to the backend: closed, or this call is the probe."""
        if self._failed < self.failures:
            return True
        now = self._clock()
        if now < self._skip_until:
            return False
        self._skip_until = now + self.cooldown  # this call probes; the others keep skipping
        return True

    def succeeded(self) -> None:
        """Record a decision the backend made: closes the breaker."""
        self._failed = 0
        self.last_error = None

    def failed(self, error: BackendError) -> None:
        """Record a failure of the backend (an error, or no answer within the budget)."""
        self._failed += 1
        self.last_error = error
        if self._failed >= self.failures:
            self._skip_until = self._clock() + self.cooldown
