from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ._errors import ConfigurationError

# Scripts run in Lua, whose numbers are doubles: every product the algorithms form stays
# below 2**53 so that Lua and Python compute exactly the same integers.
MAX_EXACT = 2**53

_UNITS_MS = {
    "ms": 1, "msec": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1_000, "sec": 1_000, "secs": 1_000, "second": 1_000, "seconds": 1_000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
}  # fmt: skip
_NAMES = ((86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute"), (1_000, "second"))
_RATE_RE = re.compile(r"^\s*(\d+)\s*(?:/|\s+per\s+)\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
ACCEPTED = (
    "'<limit>/<period>' or '<limit> per <period>', where <period> is an optional number and a "
    "unit (ms, s/sec/second, m/min/minute, h/hour, d/day), e.g. '100/minute', '100/min', "
    "'100 per minute', '5/30s', '100/500ms'"
)


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units of cost per ``period``.

    Args:
        limit: How many units of cost each period allows (a positive integer).
        period: The period, in seconds or as a ``timedelta``; at least one millisecond and a
            whole number of milliseconds.

    Raises:
        ConfigurationError: If the limit or the period is not valid.
    """

    limit: int
    period: float
    period_ms: int = field(init=False, repr=False, compare=False)

    def __init__(self, limit: int, period: float | timedelta) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"rate limit must be a positive integer, got {limit!r}")
        seconds = period.total_seconds() if isinstance(period, timedelta) else period
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0 < seconds < math.inf
        ):
            raise ConfigurationError(f"rate period must be a positive duration, got {period!r}")
        period_ms = round(seconds * 1000)
        if period_ms < 1 or abs(period_ms - seconds * 1000) > 1e-6 * max(1.0, seconds * 1000):
            raise ConfigurationError(
                f"rate period must be a whole number of milliseconds (at least 1 ms), "
                f"got {period!r}"
            )
        if limit * period_ms > MAX_EXACT:
            raise ConfigurationError(
                f"rate {limit}/{period_ms}ms is too large: limit x period in ms must be at most "
                f"2**53; use a coarser unit of cost"
            )
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "period", period_ms / 1000)
        object.__setattr__(self, "period_ms", period_ms)

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse a rate: ``"100/minute"``, ``"100 per minute"``, ``"5/30s"``, ``"100/500ms"``...

        Raises:
            ConfigurationError: Naming the text and the accepted forms.
        """
        match = _RATE_RE.match(text.lower()) if isinstance(text, str) else None
        if match is None or match[3] not in _UNITS_MS:
            raise ConfigurationError(f"cannot parse rate {text!r}: expected {ACCEPTED}")
        count = float(match[2]) if match[2] else 1.0
        try:
            return cls(int(match[1]), count * _UNITS_MS[match[3]] / 1000)
        except ConfigurationError as exc:
            raise ConfigurationError(f"invalid rate {text!r}: {exc}") from None

    def __str__(self) -> str:
        for unit_ms, name in _NAMES:
            if self.period_ms == unit_ms:
                return f"{self.limit}/{name}"
        for unit_ms, name in _NAMES:
            if self.period_ms % unit_ms == 0:
                return f"{self.limit}/{self.period_ms // unit_ms}{name[0]}"
        return f"{self.limit}/{self.period_ms}ms"


def to_rates(rates: Rate | str | Sequence[Rate | str]) -> tuple[Rate, ...]:
    """Normalise a limiter's ``rates`` argument to a non-empty tuple of distinct Rates."""
    if isinstance(rates, (Rate, str)):
        items: list[object] = [rates]
    elif isinstance(rates, (list, tuple)):
        items = list(rates)
    else:
        raise ConfigurationError(
            f"rates must be a Rate, a string like '100/minute', or a list of them, got {rates!r}"
        )
    if not items:
        raise ConfigurationError("a limiter needs at least one rate, got none")
    parsed = []
    for item in items:
        if isinstance(item, Rate):
            parsed.append(item)
        elif isinstance(item, str):
            parsed.append(Rate.parse(item))
        else:
            raise ConfigurationError(
                f"a rate must be a Rate or a string like '100/minute', got {item!r}"
            )
    if len(set(parsed)) != len(parsed):
        raise ConfigurationError(f"duplicate rates in {[str(r) for r in parsed]}")
    return tuple(parsed)
