"""What the HTTP integrations share, whatever the framework: the request as key functions see
it, the IETF RateLimit headers, the 429 problem body."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import cached_property
from typing import Literal, TypeAlias

from ._decision import Decision
from ._errors import ConfigurationError
from ._limiter import Limiter
from ._rate import Rate

HeaderStyle: TypeAlias = Literal["ietf", "ietf+legacy", "none"]
_STYLES = ("ietf", "ietf+legacy", "none")
UNMATCHED_ROUTE = "<unmatched>"  # one shared limit for every path no route matches


class RequestInfo:
    """A request as key functions, cost functions and exemptions see it, in every framework.

    Attributes:
        native: The framework's own request object (Starlette's Request or WebSocket,
            aiohttp's web.Request), for what this class does not carry.
    """

    __slots__ = ("__dict__", "_raw_headers", "client_host", "method", "native", "path", "route")

    def __init__(
        self,
        *,
        native: object,
        client_host: str | None,
        method: str,
        path: str,
        route: str | None,
        raw_headers: Callable[[], Iterable[tuple[str, str]]],
        user: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.native = native
        #: The socket peer's address (not a forwarded one: see ``keys.client_ip``).
        self.client_host = client_host
        self.method = method
        #: The raw path; never a good key on its own (``/items/1``, ``/items/2``, ...).
        self.path = path
        #: The route's template (``/items/{id}``), or ``"<unmatched>"``.
        self.route = route
        self._raw_headers = raw_headers
        self._user = user

    @cached_property
    def headers(self) -> Mapping[str, str]:
        """Request headers by lower-case name; repeated fields joined with ``", "``."""
        headers: dict[str, str] = {}
        for name, value in self._raw_headers():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    @cached_property
    def user(self) -> str | None:
        """The authenticated user's identity, if the framework's auth layer set one."""
        return self._user()


KeyFunc: TypeAlias = Callable[[RequestInfo], "str | Awaitable[str | None] | None"]
CostFunc: TypeAlias = Callable[[RequestInfo], "int | Awaitable[int]"]
ExemptFunc: TypeAlias = Callable[[RequestInfo], "bool | Awaitable[bool]"]


async def resolve(value: object) -> object:
    """The value of a sync or async callable's result."""
    if value is None or type(value) in (str, int, bool):  # the usual answers, checked fast
        return value
    return await value if inspect.isawaitable(value) else value


def as_limiter(limiter: Limiter | Rate | str | list[Rate | str]) -> Limiter:
    """A Limiter, or one made from a rate (on the process-wide memory backend)."""
    return limiter if isinstance(limiter, Limiter) else Limiter(limiter)


class Policy:
    """How one limiter speaks HTTP: its header values and its 429 body.

    Args:
        limiter: The limiter whose decisions these are.
        headers: ``"ietf"`` (``RateLimit-Policy`` and ``RateLimit``, from
            draft-ietf-httpapi-ratelimit-headers), ``"ietf+legacy"`` (also
            ``X-RateLimit-Limit/Remaining/Reset``; Reset is in delta seconds, not a timestamp),
            or ``"none"``. ``Retry-After`` is always sent with a 429.
    """

    def __init__(self, limiter: Limiter, headers: HeaderStyle = "ietf") -> None:
        if headers not in _STYLES:
            raise ConfigurationError(f"headers must be one of {list(_STYLES)}, got {headers!r}")
        self.limiter = limiter
        self.style = headers
        rates = limiter.rates
        # one policy per rate; a single rate's policy is named after the limiter
        self.names = (
            [limiter.name] if len(rates) == 1 else [f"{limiter.name}:{rate}" for rate in rates]
        )
        self._quoted = [_sf_string(name) for name in self.names]
        self._policy = ", ".join(
            f"{quoted};q={cap};w={math.ceil(rate.period)}"
            for quoted, rate, cap in zip(self._quoted, rates, limiter._limits.capacities)
        )
        # the same for every response: encoded once, for the ASGI integrations
        self._raw_policy = (b"ratelimit-policy", self._policy.encode("latin-1"))

    def _ratelimit(self, decision: Decision) -> str:
        # the RateLimit header's value: where each rate stands
        states = decision.rates
        if len(self._quoted) == 1 and states:  # one rate, the usual case: no join
            s = states[0]
            return f"{self._quoted[0]};r={s.remaining};t={math.ceil(s.reset_after)}"
        return ", ".join(
            f"{quoted};r={s.remaining};t={math.ceil(s.reset_after)}"
            for quoted, s in zip(self._quoted, states)
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

    def raw_headers(self, decision: Decision) -> list[tuple[bytes, bytes]]:
        """:meth:`headers`, as ASGI sends them: lower-case names, latin-1 bytes."""
        if self.style == "ietf" and decision.allowed:  # the usual response, built directly
            return [self._raw_policy, (b"ratelimit", self._ratelimit(decision).encode("latin-1"))]
        headers = self.headers(decision)
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]

    def problem(self, decision: Decision) -> bytes:
        """The 429 body, an RFC 9457 problem (``application/problem+json``)."""
        binding = self.names[self.limiter.rates.index(decision.rate)]
        if math.isinf(decision.retry_after):
            detail = f"This request costs more than rate limit {decision.rate} ever allows."
        else:
            detail = (
                f"Rate limit {decision.rate} exceeded; retry after "
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


PROBLEM_JSON = "application/problem+json"


def _sf_string(text: str) -> str:
    # RFC 8941 sf-string: printable ASCII, with '"' and '\' escaped
    if not all(" " <= c <= "~" for c in text):
        raise ConfigurationError(
            f"limiter name {text!r} must be printable ASCII to name an HTTP policy"
        )
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class HttpLimit:
    """Decides one request: exemption, key, cost, then the limiter's hit.

    Args:
        limiter: A Limiter, or a rate to make one from (on the process-wide memory backend).
        key: A key function (sync or async); default ``keys.default()``, the client's IP on
            the route template.
        cost: Units each request costs, or a function of the request that says.
        headers: Which rate-limit headers to send (see :class:`Policy`).
        exempt: A predicate (sync or async): True leaves the request unlimited.
    """

    def __init__(
        self,
        limiter: Limiter | Rate | str | list[Rate | str],
        *,
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        headers: HeaderStyle = "ietf",
        exempt: ExemptFunc | None = None,
    ) -> None:
        from .keys import _default_key, default

        self.limiter = as_limiter(limiter)
        self.policy = Policy(self.limiter, headers)
        self.key = default() if key is None else key
        self._uses_default_key = key is None
        self._default_key = _default_key  # default()'s key, from a client and a route alone
        if isinstance(cost, bool) or not ((isinstance(cost, int) and cost >= 0) or callable(cost)):
            raise ConfigurationError(f"cost must be an integer >= 0 or a function, got {cost!r}")
        self.cost = cost
        self.exempt = exempt
        #: True when a request's decision needs only its client and route (the default key,
        #: a constant cost, no exemption): see :meth:`hit_default`.
        self.plain = key is None and exempt is None and isinstance(cost, int)

    async def decide(self, request: RequestInfo) -> Decision | None:
        """The decision for ``request``, or None when it is not limited."""
        if self.exempt is not None and await resolve(self.exempt(request)):
            return None
        if self._uses_default_key:
            key: object = self._default_key(request.client_host, request.route)
        else:
            key = await resolve(self.key(request))
            if key is None:
                return None
        cost = self.cost if isinstance(self.cost, int) else await resolve(self.cost(request))
        return await self.limiter.hit(key, cost)  # type: ignore[arg-type]

    def hit_default(self, client_host: str | None, route: str) -> Awaitable[Decision]:
        """:meth:`decide` for a :attr:`plain` limit, with no :class:`RequestInfo` to build:
        the hit on the default key of a request from ``client_host`` on ``route``."""
        key = self._default_key(client_host, route)
        return self.limiter.hit(key, self.cost)  # type: ignore[arg-type]  # plain: an int


async def concurrency_key(
    request: RequestInfo, key: KeyFunc | None, exempt: ExemptFunc | None
) -> str | None:
    """The key of a request's in-flight slot (default: the client's IP), or None if exempt."""
    if exempt is not None and await resolve(exempt(request)):
        return None
    if key is None:
        from .keys import client_ip

        key = client_ip()
    return await resolve(key(request))  # type: ignore[return-value]


def too_many_in_flight(limiter_name: str, max_inflight: int) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and the problem body of a request refused for lack of a free slot."""
    detail = f"Too many requests in flight: at most {max_inflight} at once."
    return [("Retry-After", "1")], problem(detail, limiter_name, 1.0)
