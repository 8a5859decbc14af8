"""FastAPI and Starlette: a dependency per route, a pure-ASGI middleware for a whole app, and a
WebSocket dependency.

>>> from fastapi import Depends, FastAPI
>>> from glidelimit.fastapi import RateLimit
>>> app = FastAPI()
>>> @app.get("/items/{item_id}", dependencies=[Depends(RateLimit("100/minute"))])
... async def item(item_id: int) -> dict[str, int]:
...     return {"id": item_id}
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn, TypeAlias

try:
    from starlette.exceptions import HTTPException, WebSocketException
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from starlette.websockets import WebSocket
except ImportError as _missing:  # pragma: no cover
    raise ImportError(
        "glidelimit.fastapi needs FastAPI (or Starlette): pip install 'glidelimit[fastapi]'"
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
from ._limiter import Limiter
from ._request_info import CostFunc, ExemptFunc, KeyFunc, RequestInfo, TierFunc, resolve
from ._routes import RouteTemplates, routed_template

__all__ = [
    "ConcurrencyLimit",
    "OnDenied",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimited",
    "WebSocketRateLimit",
    "rate_limited_handler",
]

#: Makes the response for a denied request: given the request and the decision.
OnDenied: TypeAlias = Callable[[Request, Decision], "Response | Awaitable[Response]"]


class RateLimited(HTTPException):
    """Raised by :class:`RateLimit` for a denied request; answered by
    :func:`rate_limited_handler` with a 429 ``application/problem+json`` response."""

    def __init__(
        self,
        decision: Decision,
        headers: list[tuple[str, str]],
        body: bytes,
        on_denied: OnDenied | None,
    ) -> None:
        self.decision = decision
        self.body = body
        self.on_denied = on_denied
        super().__init__(429, "Too Many Requests", dict(headers))

    def raise_in(self, request: HTTPConnection) -> NoReturn:
        """Raise this, making sure the app answers it with :func:`rate_limited_handler`."""
        # Starlette's handlers for this app live in the scope: make sure ours is among them
        handlers = request.scope.get("starlette.exception_handlers")
        if handlers is not None:
            handlers[0].setdefault(RateLimited, rate_limited_handler)
        raise self


async def rate_limited_handler(request: Request, exc: Exception) -> Response:
    """The exception handler for :class:`RateLimited`. :class:`RateLimit` installs it on the
    app by itself; register your own for ``RateLimited`` (or pass ``on_denied``) to answer
    differently."""
    assert isinstance(exc, RateLimited)
    if exc.on_denied is not None:
        return await resolve(exc.on_denied(request, exc.decision))
    return Response(exc.body, status_code=429, headers=exc.headers, media_type=PROBLEM_JSON)


def _user(scope: Scope) -> str | None:
    user = scope.get("user")  # set by Starlette's AuthenticationMiddleware
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(getattr(user, "identity", None) or getattr(user, "display_name", None) or user)


def _info(conn: HTTPConnection, route: str) -> RequestInfo:
    scope = conn.scope
    client = scope.get("client")
    return RequestInfo(
        native=conn,
        client_host=client[0] if client else None,
        method=scope.get("method", "GET"),
        path=scope["path"],
        route=route,
        raw_headers=lambda: (
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
        ),
        user=lambda: _user(scope),
    )


class RateLimit:
    """A FastAPI dependency that limits the route it is on.

    ``Depends(rate_limit)`` as a parameter gives the route the :class:`~glidelimit.Decision`;
    ``dependencies=[Depends(rate_limit)]`` just limits. An allowed request's response gets the
    rate-limit headers (unless the route returns a ``Response`` object itself, whose headers
    FastAPI leaves alone: use :class:`RateLimitMiddleware` then); a denied one is answered
    with 429, ``Retry-After`` and an ``application/problem+json`` body.

    >>> search = RateLimit(Limiter(["5/10s", "50/hour"], backend=backend, name="search"))
    >>> @app.get("/search", dependencies=[Depends(search)])
    ... async def run_search(q: str): ...

    Args:
        limiter_or_rate: A Limiter, or a rate (``"100/minute"``, a list of them) to make one
            from, on the process-wide memory backend, named after where it is declared.
        key: Key function; default: the client's IP (socket peer) on the route template.
        cost: Units each request costs, or a function of the request that says.
        headers: ``"ietf"`` (default), ``"ietf+legacy"`` or ``"none"``.
        exempt: A predicate: True leaves the request unlimited.
        on_denied: Makes the response for a denied request instead of the problem body.
        tier: With a limiter of :class:`~glidelimit.Tiers`: the tier, or a function of the
            request that says (the user's plan); default: the tiers' lookup, or their default.
    """

    def __init__(
        self,
        limiter_or_rate: LimiterLike,
        *,
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        headers: HeaderStyle = "ietf",
        exempt: ExemptFunc | None = None,
        on_denied: OnDenied | None = None,
        tier: str | TierFunc | None = None,
    ) -> None:
        limiter = as_limiter(limiter_or_rate, "route", declared_at(1))
        self.gate: HttpLimit = HttpLimit(
            limiter, key=key, cost=cost, headers=headers, exempt=exempt, tier=tier
        )
        self.on_denied: OnDenied | None = on_denied

    @property
    def limiter(self) -> Limiter:
        """The limiter deciding."""
        return self.gate.limiter

    def __repr__(self) -> str:
        return f"RateLimit({self.limiter!r})"

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        found = await self.gate.decide(_info(request, routed_template(request.scope)))
        if found is None:
            return None
        decision, policy = found
        if decision.allowed:
            for name, value in policy.headers(decision):
                response.headers[name] = value  # replaces another limit's, if any
            return decision
        denied = RateLimited(
            decision, policy.headers(decision), policy.problem(decision), self.on_denied
        )
        denied.raise_in(request)


class WebSocketRateLimit:
    """A FastAPI WebSocket dependency: limits connections, and messages if you ask.

    ``Depends(ws_limit)`` on a WebSocket route refuses a connection over the limit (close code
    1008, policy violation; before the handshake completes, the client sees HTTP 403).
    ``await ws_limit.message(websocket)`` inside the route spends on each message and closes
    the socket with 1008 when a message is over the limit. Same arguments as :class:`RateLimit`
    (but no headers: WebSocket frames have none).
    """

    def __init__(
        self,
        limiter_or_rate: LimiterLike,
        *,
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        exempt: ExemptFunc | None = None,
    ) -> None:
        limiter = as_limiter(limiter_or_rate, "websocket", declared_at(1))
        self.gate: HttpLimit = HttpLimit(limiter, key=key, cost=cost, headers="none", exempt=exempt)

    async def __call__(self, websocket: WebSocket) -> Decision | None:
        return await self.message(websocket)

    async def message(self, websocket: WebSocket) -> Decision | None:
        """Spend on one connection or message; raises ``WebSocketException(1008)`` if denied."""
        found = await self.gate.decide(_info(websocket, routed_template(websocket.scope)))
        if found is None:
            return None
        decision = found[0]
        if not decision.allowed:
            raise WebSocketException(1008, f"rate limit {decision.rate} exceeded")
        return decision


class ConcurrencyLimit:
    """A FastAPI dependency that caps requests in flight per key (default: per client IP),
    across every process sharing the limiter's backend.

    ``dependencies=[Depends(ConcurrencyLimit(ConcurrencyLimiter(5, backend=backend)))]``: a
    request that finds no free slot within ``timeout`` is answered with 429, ``Retry-After: 1``
    and a problem body; the slot is held until the route's response is made.

    Args:
        limiter: The concurrency limiter.
        key: Key function; default: ``keys.client_ip()``.
        timeout: Seconds to wait for a slot (default 0: refuse at once).
        exempt: A predicate: True leaves the request unlimited.
    """

    def __init__(
        self,
        limiter: ConcurrencyLimiter,
        *,
        key: KeyFunc | None = None,
        timeout: float = 0.0,
        exempt: ExemptFunc | None = None,
    ) -> None:
        self.gate: InFlightLimit = InFlightLimit(limiter, key=key, timeout=timeout, exempt=exempt)

    @property
    def limiter(self) -> ConcurrencyLimiter:
        """The concurrency limiter deciding."""
        return self.gate.limiter

    async def __call__(self, request: Request) -> AsyncIterator[Decision | None]:
        gate = self.gate
        key = await gate.key_of(_info(request, routed_template(request.scope)))
        if key is None:
            yield None
            return
        slot = gate.limiter.slot(key, gate.timeout)
        try:
            decision = await slot.__aenter__()
        except RateLimitExceeded as exc:
            headers, body = gate.refusal()
            RateLimited(exc.decision, headers, body, None).raise_in(request)
        try:
            yield decision
        finally:
            await slot.__aexit__(None, None, None)


class RateLimitMiddleware:
    """Pure ASGI middleware that limits every HTTP request of a Starlette or FastAPI app.

    ``app.add_middleware(RateLimitMiddleware, limiter=Limiter("1000/minute"))``. Keys see the
    route template, resolved from the app's routes (``"<unmatched>"`` for none). Allowed
    responses get the rate-limit headers, denied requests a 429 problem response. WebSocket
    and lifespan traffic pass through (use :class:`WebSocketRateLimit`).

    Args:
        app: The ASGI app to wrap.
        limiter: A Limiter, or a rate to make one from (named after where it is declared).
        key: Key function; default: the client's IP (socket peer) on the route template.
        cost: Units each request costs, or a function of the request that says.
        headers: ``"ietf"`` (default), ``"ietf+legacy"`` or ``"none"``.
        exempt: A predicate: True leaves the request unlimited.
        on_denied: Makes the response for a denied request (given a Starlette Request).
        tier: With a limiter of :class:`~glidelimit.Tiers`: the tier, or a function of the
            request that says; default: the tiers' lookup, or their default.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: LimiterLike,
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        headers: HeaderStyle = "ietf",
        exempt: ExemptFunc | None = None,
        on_denied: OnDenied | None = None,
        tier: str | TierFunc | None = None,
    ) -> None:
        self.app: ASGIApp = app
        # Starlette makes the middleware when the app starts, far from where it was declared:
        # a limiter made from a rate is named after the rate alone
        limiter = as_limiter(limiter, "app", "RateLimitMiddleware")
        self.gate: HttpLimit = HttpLimit(
            limiter, key=key, cost=cost, headers=headers, exempt=exempt, tier=tier
        )
        self.on_denied: OnDenied | None = on_denied
        self._templates = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        found = await self.gate.decide(_info(request, self._templates(scope)))
        if found is None:
            await self.app(scope, receive, send)
            return
        decision, policy = found
        if not decision.allowed:
            if self.on_denied is not None:
                response = await resolve(self.on_denied(request, decision))
            else:
                response = Response(
                    policy.problem(decision), status_code=429,
                    headers=dict(policy.headers(decision)), media_type=PROBLEM_JSON,
                )  # fmt: skip
            await response(scope, receive, send)
            return
        extra = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in policy.headers(decision)
        ]

        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":  # a copy: the app may reuse its own
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            return send(message)

        await self.app(scope, receive, send_with_headers)
