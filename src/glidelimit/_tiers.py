"""Tiers: rates chosen per request (a plan, a header, a lookup), changeable at runtime."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TypeAlias

from ._errors import ConfigurationError
from ._rate import Rate, to_rates

#: One tier's rates: a Rate, a string such as ``"100/minute"``, or a list of them.
Rates: TypeAlias = "Rate | str | Sequence[Rate | str]"
#: Picks a key's tier (sync or async): a plan looked up by user id, say.
TierLookup: TypeAlias = Callable[[str], "str | Awaitable[str]"]


class Tiers(Mapping[str, tuple[Rate, ...]]):
    """Rates per tier, for a limiter whose rates are chosen per request or per key.

    >>> plans = Tiers({"free": "100/minute", "pro": ["1000/minute", "20000/day"]}, default="free")
    >>> limiter = Limiter(plans, name="api")
    >>> decision = await limiter.hit("user:42", tier="pro")
    >>> plans["pro"] = "2000/minute"  # the next decision of a pro key uses it

    Every tier keeps its own counters: a key that moves to another tier starts afresh there,
    and so does a tier whose rates change (its old counters expire by themselves). Each tier
    is its own policy in the HTTP headers, named after the tier.

    Args:
        tiers: Rates by tier name (names are printable ASCII, without ``{``, ``}`` or ``:``).
        default: The tier of a decision that names none and has no ``lookup``; default: the
            first tier.
        lookup: Picks the tier of a key (sync or async), for decisions that name none: a
            plan kept in a database, say. Its answer must be one of the tiers.

    Raises:
        ConfigurationError: Naming the bad tier or rate.
    """

    def __init__(
        self,
        tiers: Mapping[str, Rates],
        *,
        default: str | None = None,
        lookup: TierLookup | None = None,
    ) -> None:
        if not isinstance(tiers, Mapping) or not tiers:
            raise ConfigurationError(f"tiers must be a non-empty mapping of rates, got {tiers!r}")
        self._rates: dict[str, tuple[Rate, ...]] = {}
        for name, rates in tiers.items():
            self[name] = rates
        #: The tier of a decision that names none, when there is no lookup.
        self.default: str = next(iter(self._rates)) if default is None else default
        if self.default not in self._rates:
            raise ConfigurationError(
                f"default tier {default!r} is not one of the tiers {sorted(self._rates)}"
            )
        if lookup is not None and not callable(lookup):
            raise ConfigurationError(f"lookup must be a function of a key, got {lookup!r}")
        #: Picks a key's tier, for decisions that name none.
        self.lookup: TierLookup | None = lookup

    def __repr__(self) -> str:
        shown = {name: [str(r) for r in rates] for name, rates in self._rates.items()}
        return f"Tiers({shown!r}, default={self.default!r})"

    def __getitem__(self, name: str) -> tuple[Rate, ...]:
        try:
            return self._rates[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown tier {name!r}; the tiers are {sorted(self._rates)}"
            ) from None

    def __setitem__(self, name: str, rates: Rates) -> None:
        """Give tier ``name`` these rates, now: the next decision in that tier uses them."""
        if (
            not isinstance(name, str)
            or not name
            or any(c in name for c in "{}:")
            or not all(" " <= c <= "~" for c in name)
        ):
            raise ConfigurationError(
                f"a tier name must be printable ASCII without '{{', '}}' or ':', got {name!r}"
            )
        self._rates[name] = to_rates(rates)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rates)

    def __len__(self) -> int:
        return len(self._rates)

    async def tier_of(self, key: str) -> str:
        """``key``'s tier: the lookup's answer, or the default tier."""
        if self.lookup is None:
            return self.default
        found = self.lookup(key)
        if inspect.isawaitable(found):
            found = await found
        if found not in self._rates:
            raise ConfigurationError(
                f"the tier lookup gave {found!r} for a key; the tiers are {sorted(self._rates)}"
            )
        return found
