"""aiohttp: a middleware for a whole app, and a decorator for one handler.

>>> from aiohttp import web
>>> from glidelimit.aiohttp import rate_limit, rate_limit_middleware
>>> app = web.Application(middlewares=[rate_limit_middleware("1000/minute")])
>>> @rate_limit("10/minute")
... async def expensive(request: web.Request) -> web.Response:
...     return web.Response(text="done")
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeAlias

try:
    from aiohttp import web
    from aiohttp.typedefs import Handler, Middleware
except ImportError as _missing:  # pragma: no cover
    raise ImportError(
        "glidelimit.aiohttp needs aiohttp: pip install 'glidelimit[aiohttp]'"
    ) from _missing

from ._concurrency import ConcurrencyLimiter
from ._decision import Decision, RateLimitExceeded
from ._http import (
    PROBLEM_JSON,
    HeaderStyle,
    HttpLimit,
    InFlightLimit,
    LimiterLike,
    as_limiter,
    declared_at,
)
from ._request_info import (
    UNMATCHED_ROUTE,
    CostFunc,
    ExemptFunc,
    KeyFunc,
    RequestInfo,
    TierFunc,
    resolve,
)

__all__ = ["OnDenied", "concurrency_limit_middleware", "rate_limit", "rate_limit_middleware"]

#: Makes the response for a denied request: given the request and the decision.
OnDenied: TypeAlias = Callable[
    [web.Request, Decision], "web.StreamResponse | Awaitable[web.StreamResponse]"
]


def _client_host(request: web.Request) -> str | None:
    # the socket peer, never a header: forwarded addresses are keys.client_ip's business
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer[0] if isinstance(peer, (tuple, list)) else request.remote


def _info(request: web.Request) -> RequestInfo:
    resource = request.match_info.route.resource
    user = request.get("user")
    return RequestInfo(
        native=request,
        client_host=_client_host(request),
        method=request.method,
        path=request.path,
        route=resource.canonical if resource is not None else UNMATCHED_ROUTE,
        raw_headers=lambda: request.headers.items(),
        user=lambda: None if user is None else str(user),
    )


async def _limited(
    gate: HttpLimit, on_denied: OnDenied | None, request: web.Request, handler: Handler
) -> web.StreamResponse:
    found = await gate.decide(_info(request))
    if found is None:
        return await handler(request)
    decision, policy = found
    headers = policy.headers(decision)
    if not decision.allowed:
        if on_denied is not None:
            return await resolve(on_denied(request, decision))
        return web.Response(
            status=429, body=policy.problem(decision), content_type=PROBLEM_JSON, headers=headers
        )
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # an error response is a response too
        exc.headers.extend(headers)
        raise
    if not isinstance(response, web.StreamResponse):
        return response  # not a response: aiohttp says what is wrong with it
    if not response.prepared:  # a streamed response has sent its headers already
        response.headers.extend(headers)
    return response


def rate_limit_middleware(
    limiter: LimiterLike,
    *,
    key: KeyFunc | None = None,
    cost: int | CostFunc = 1,
    headers: HeaderStyle = "ietf",
    exempt: ExemptFunc | None = None,
    on_denied: OnDenied | None = None,
    tier: str | TierFunc | None = None,
) -> Middleware:
    """A middleware that limits every request of the app.

    Args:
        limiter: A Limiter, or a rate (``"100/minute"``, a list of them) to make one from, on
            the process-wide memory backend, named after where it is declared.
        key: Key function; default: the client's IP (socket peer) on the route's canonical
            template (``/items/{id}``).
        cost: Units each request costs, or a function of the request that says.
        headers: ``"ietf"`` (default), ``"ietf+legacy"`` or ``"none"``.
        exempt: A predicate: True leaves the request unlimited.
        on_denied: Makes the response for a denied request instead of the 429 problem body.
        tier: With a limiter of :class:`~glidelimit.Tiers`: the tier, or a function of the
            request that says (the user's plan); default: the tiers' lookup, or their default.
    """
    limiter = as_limiter(limiter, "app", declared_at(1))
    gate = HttpLimit(limiter, key=key, cost=cost, headers=headers, exempt=exempt, tier=tier)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await _limited(gate, on_denied, request, handler)

    return middleware


def concurrency_limit_middleware(
    limiter: ConcurrencyLimiter,
    *,
    key: KeyFunc | None = None,
    timeout: float = 0.0,
    exempt: ExemptFunc | None = None,
) -> Middleware:
    """A middleware that caps requests in flight per key (default: per client IP), across
    every process sharing the limiter's backend. A request that finds no free slot within
    ``timeout`` seconds (default 0) is answered with 429, ``Retry-After: 1`` and a problem
    body."""
    gate = InFlightLimit(limiter, key=key, timeout=timeout, exempt=exempt)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        key_text = await gate.key_of(_info(request))
        if key_text is None:
            return await handler(request)
        slot = limiter.slot(key_text, timeout)
        try:
            await slot.__aenter__()
        except RateLimitExceeded:
            headers, body = gate.refusal()
            return web.Response(status=429, body=body, content_type=PROBLEM_JSON, headers=headers)
        try:
            return await handler(request)
        finally:
            await slot.__aexit__(None, None, None)

    return middleware


def rate_limit(
    limiter: LimiterLike,
    *,
    key: KeyFunc | None = None,
    cost: int | CostFunc = 1,
    headers: HeaderStyle = "ietf",
    exempt: ExemptFunc | None = None,
    on_denied: OnDenied | None = None,
    tier: str | TierFunc | None = None,
) -> Callable[[Handler], Handler]:
    """A decorator that limits one handler; the arguments are those of
    :func:`rate_limit_middleware` (a limiter made from a rate is named after the handler)."""
    where = declared_at(1)

    def decorate(handler: Handler) -> Handler:
        hint = getattr(handler, "__name__", "handler")
        qualified = f"{where}|{getattr(handler, '__qualname__', hint)}"
        gate = HttpLimit(
            as_limiter(limiter, hint, qualified), key=key, cost=cost, headers=headers,
            exempt=exempt, tier=tier,
        )  # fmt: skip

        @functools.wraps(handler)
        async def limited(request: web.Request) -> web.StreamResponse:
            return await _limited(gate, on_denied, request, handler)

        return limited

    return decorate
