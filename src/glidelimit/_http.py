"""What the HTTP integrations share, whatever the framework: the gate that decides a request,
the IETF RateLimit headers, the 429 problem body."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from typing import Literal, TypeAlias

from ._concurrency import ConcurrencyLimiter
from ._decision import Decision
from ._errors import ConfigurationError
from ._limiter import Limiter
from ._quota import Quota
from ._rate import Rate
from ._request_info import CostFunc, ExemptFunc, KeyFunc, RequestInfo, TierFunc, resolve
from .keys import client_ip, default

HeaderStyle: TypeAlias = Literal["ietf", "ietf+legacy", "none"]
LimiterLike: TypeAlias = "Limiter | Rate | str | list[Rate | str]"
_STYLES = ("ietf", "ietf+legacy", "none")
PROBLEM_JSON = "application/problem+json"


def declared_at(depth: int) -> str:
    """Where the integration was declared, ``depth`` frames above the caller: a module and a
    line, the same in every process that runs the same code."""
    frame = sys._getframe(depth + 1)
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_lineno}"


def as_limiter(limiter: LimiterLike, hint: str, where: str) -> Limiter:
    """``limiter``, or one made from a rate (on the process-wide memory backend), named after
    ``hint`` and where it was declared: distinct for each declaration, and the same in every
    process (so that a fleet on one backend shares it)."""
    if isinstance(limiter, Limiter):
        return limiter
    digest = hashlib.sha256(f"{where}|{limiter!r}".encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in hint)
    return Limiter(limiter, name=f"{safe}-{digest}")


class Policy:
    """How one limiter's rates (of one tier) speak HTTP: header values and the 429 body.

    Args:
        quota: The rates whose decisions these are (``limiter.quota(tier)``).
        headers: ``"ietf"`` (``RateLimit-Policy`` and ``RateLimit``, from
            draft-ietf-httpapi-ratelimit-headers), ``"ietf+legacy"`` (also
            ``X-RateLimit-Limit/Remaining/Reset``; Reset is in delta seconds, not a timestamp),
            or ``"none"``. ``Retry-After`` is always sent with a 429.
    """

    def __init__(self, quota: Quota, headers: HeaderStyle = "ietf") -> None:
        if headers not in _STYLES:
            raise ConfigurationError(f"headers must be one of {list(_STYLES)}, got {headers!r}")
        self.style: HeaderStyle = headers
        self.rates: tuple[Rate, ...] = quota.limits.rates
        rates = self.rates
        # one policy per rate; a single rate's policy is named after the limiter (or tier)
        label = quota.label
        self.names: list[str] = (
            [label] if len(rates) == 1 else [f"{label}:{rate}" for rate in rates]
        )
        self._quoted = [_sf_string(name) for name in self.names]
        self._policy = ", ".join(
            f"{quoted};q={cap};w={math.ceil(rate.period)}"
            for quoted, rate, cap in zip(self._quoted, rates, quota.limits.capacities)
        )

    def _ratelimit(self, decision: Decision) -> str:
        # the RateLimit header's value: where each rate stands
        return ", ".join(
            f"{quoted};r={s.remaining};t={math.ceil(s.reset_after)}"
            for quoted, s in zip(self._quoted, decision.rates)
        )

    def headers(self, decision: Decision) -> list[tuple[str, str]]:
        """The headers for a response decided by ``decision``, allowed or not."""
        out = []
        if self.style != "none":
            out.append(("RateLimit-Policy", self._policy))
            out.append(("RateLimit", self._ratelimit(decision)))
            if self.style == "ietf+legacy":
                out += [
                    ("X-RateLimit-Limit", str(decision.limit)),
                    ("X-RateLimit-Remaining", str(decision.remaining)),
                    ("X-RateLimit-Reset", str(math.ceil(decision.reset_after))),
                ]
        if not decision.allowed and not math.isinf(decision.retry_after):
            out.append(("Retry-After", str(max(1, math.ceil(decision.retry_after)))))
        return out

    def problem(self, decision: Decision) -> bytes:
        """The 429 body, an RFC 9457 problem (``application/problem+json``)."""
        rate = decision.rate
        binding = self.names[self.rates.index(rate)] if rate in self.rates else self.names[0]
        if math.isinf(decision.retry_after):
            detail = f"This request costs more than rate limit {rate} ever allows."
        else:
            detail = (
                f"Rate limit {rate} exceeded; retry after "
                f"{max(1, math.ceil(decision.retry_after))} s."
            )
        return problem(detail, binding, decision.retry_after)


def problem(detail: str, policy: str, retry_after: float) -> bytes:
    """A 429 body, an RFC 9457 problem naming the violated policy."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": detail,
        "policy": policy,
    }
    if not math.isinf(retry_after):
        body["retry_after"] = max(1, math.ceil(retry_after))
    return json.dumps(body).encode()


def _sf_string(text: str) -> str:
    # RFC 8941 sf-string: printable ASCII, with '"' and '\' escaped
    if not all(" " <= c <= "~" for c in text):
        raise ConfigurationError(
            f"limiter name {text!r} must be printable ASCII to name an HTTP policy"
        )
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class HttpLimit:
    """Decides one request: exemption, key, cost and tier, then the limiter's hit.

    Args:
        limiter: The limiter.
        key: A key function (sync or async); default ``keys.default()``, the client's IP on
            the route template.
        cost: Units each request costs, or a function of the request that says.
        headers: Which rate-limit headers to send (see :class:`Policy`).
        exempt: A predicate (sync or async): True leaves the request unlimited.
        tier: With a limiter of :class:`~glidelimit.Tiers`: the tier, or a function of the
            request that says (the user's plan, say); default: the tiers' lookup of the key,
            or their default tier.

    Raises:
        ConfigurationError: Naming the bad argument.
    """

    def __init__(
        self,
        limiter: Limiter,
        *,
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        headers: HeaderStyle = "ietf",
        exempt: ExemptFunc | None = None,
        tier: str | TierFunc | None = None,
    ) -> None:
        if isinstance(cost, bool) or not ((isinstance(cost, int) and cost >= 0) or callable(cost)):
            raise ConfigurationError(f"cost must be an integer >= 0 or a function, got {cost!r}")
        if tier is not None and limiter.tiers is None:
            raise ConfigurationError(f"tier given, but limiter {limiter.name!r} has no tiers")
        if isinstance(tier, str):
            limiter.quota(tier)  # an unknown tier is refused now
        self.limiter: Limiter = limiter
        self.style: HeaderStyle = headers
        self.key: KeyFunc = default() if key is None else key
        self.cost: int | CostFunc = cost
        self.exempt: ExemptFunc | None = exempt
        self.tier: str | TierFunc | None = tier
        self._policies: dict[Quota, Policy] = {}
        self.policy(limiter.quota())  # a bad header style is refused now

    def policy(self, quota: Quota) -> Policy:
        """How the decisions of ``quota`` speak HTTP (made once per quota)."""
        policy = self._policies.get(quota)
        if policy is None:
            if len(self._policies) > 64:  # quotas of tiers whose rates changed since
                self._policies.clear()
            policy = self._policies[quota] = Policy(quota, self.style)
        return policy

    async def decide(self, request: RequestInfo) -> tuple[Decision, Policy] | None:
        """The decision for ``request`` and how it speaks HTTP, or None when it is not
        limited."""
        if self.exempt is not None and await resolve(self.exempt(request)):
            return None
        key = self.key(request)
        if type(key) is not str:
            key = await resolve(key)
            if key is None:
                return None
        cost = self.cost if isinstance(self.cost, int) else await resolve(self.cost(request))
        limiter = self.limiter
        tier = self.tier
        if tier is not None and not isinstance(tier, str):
            tier = await resolve(tier(request))
        elif tier is None and limiter.tiers is not None:
            tier = await limiter.tier_of(key)
        decision = await limiter.hit(key, cost, tier=tier)
        return decision, self.policy(limiter.quota(tier))


class InFlightLimit:
    """Decides one request's slot: exemption, key (default: the client's IP), then a slot.

    Args:
        limiter: The concurrency limiter.
        key: A key function (sync or async); default ``keys.client_ip()``.
        timeout: Seconds to wait for a slot.
        exempt: A predicate (sync or async): True leaves the request unlimited.
    """

    def __init__(
        self,
        limiter: ConcurrencyLimiter,
        *,
        key: KeyFunc | None = None,
        timeout: float = 0.0,
        exempt: ExemptFunc | None = None,
    ) -> None:
        self.limiter: ConcurrencyLimiter = limiter
        self.key: KeyFunc = client_ip() if key is None else key
        self.timeout: float = timeout
        self.exempt: ExemptFunc | None = exempt

    async def key_of(self, request: RequestInfo) -> str | None:
        """The key of ``request``'s slot, or None if it is not limited."""
        if self.exempt is not None and await resolve(self.exempt(request)):
            return None
        return await resolve(self.key(request))

    def refusal(self) -> tuple[list[tuple[str, str]], bytes]:
        """The headers and the problem body of a request refused for lack of a free slot."""
        limiter = self.limiter
        detail = f"Too many requests in flight: at most {limiter.max_inflight} at once."
        return [("Retry-After", "1")], problem(detail, limiter.name, 1.0)
