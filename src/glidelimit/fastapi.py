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

import operator
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeAlias

from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Host, Match, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ._concurrency import ConcurrencyLimiter
from ._decision import Decision
from ._errors import RateLimitExceeded
from ._http import (
    PROBLEM_JSON,
    UNMATCHED_ROUTE,
    CostFunc,
    ExemptFunc,
    HeaderStyle,
    HttpLimit,
    KeyFunc,
    RequestInfo,
    concurrency_key,
    resolve,
    too_many_in_flight,
)
from ._limiter import Limiter
from ._rate import Rate

__all__ = [
    "ConcurrencyLimit",
    "OnDenied",
    "RateLimit",
    "RateLimitMiddleware",
    "RateLimited",
    "WebSocketRateLimit",
    "rate_limited_handler",
]

OnDenied: TypeAlias = Callable[[Request, Decision], "Response | Awaitable[Response]"]
LimiterLike: TypeAlias = "Limiter | Rate | str | list[Rate | str]"


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
        return await resolve(exc.on_denied(request, exc.decision))  # type: ignore[return-value]
    return Response(exc.body, status_code=429, headers=exc.headers, media_type=PROBLEM_JSON)


def _denied(gate: HttpLimit, decision: Decision, on_denied: OnDenied | None) -> RateLimited:
    policy = gate.policy
    return RateLimited(decision, policy.headers(decision), policy.problem(decision), on_denied)


def _user(scope: Scope) -> str | None:
    user = scope.get("user")  # set by Starlette's AuthenticationMiddleware
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(getattr(user, "identity", None) or getattr(user, "display_name", None) or user)


def _info(conn: HTTPConnection, route: str | None) -> RequestInfo:
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


def _route_of(conn: HTTPConnection) -> str:
    scope = conn.scope
    # The route the router picked, before dependencies run. FastAPI runs a route of an included
    # router as it was declared, and keeps the template with the include's prefix apart.
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    # a mounted app's routes are relative to its mount: /v1 and /v2 must not share a key
    return str(scope.get("root_path", "")) + path


class RateLimit:
    """A FastAPI dependency that limits the route it is on.

    ``Depends(rate_limit)`` as a parameter gives the route the :class:`~glidelimit.Decision`;
    ``dependencies=[Depends(rate_limit)]`` just limits. An allowed request's response gets the
    rate-limit headers (unless the route returns a ``Response`` object itself, whose headers
    FastAPI leaves alone: use :class:`RateLimitMiddleware` then); a denied one is answered
    with 429, ``Retry-After`` and an ``application/problem+json`` body.

    Args:
        limiter_or_rate: A Limiter, or a rate (``"100/minute"``, a list of them) to make one
            from, on the process-wide memory backend.
        key: Key function; default: the client's IP (socket peer) on the route template.
        cost: Units each request costs, or a function of the request that says.
        headers: ``"ietf"`` (default), ``"ietf+legacy"`` or ``"none"``.
        exempt: A predicate: True leaves the request unlimited.
        on_denied: Makes the response for a denied request instead of the problem body.
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
    ) -> None:
        self.gate = HttpLimit(limiter_or_rate, key=key, cost=cost, headers=headers, exempt=exempt)
        self.on_denied = on_denied

    @property
    def limiter(self) -> Limiter:
        """The limiter deciding."""
        return self.gate.limiter

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        gate = self.gate
        if gate.plain:
            client = request.scope.get("client")
            decision = await gate.hit_default(client[0] if client else None, _route_of(request))
        else:
            found = await gate.decide(_info(request, _route_of(request)))
            if found is None:
                return None
            decision = found
        if decision.allowed:
            _set_headers(response, gate.policy.raw_headers(decision))
            return decision
        _denied(gate, decision, self.on_denied).raise_in(request)


def _set_headers(response: Response, raw: list[tuple[bytes, bytes]]) -> None:
    # response.headers.update(), which replaces a header already there (another limit's):
    # when none of these is there, as on the fresh response FastAPI gives a dependency,
    # appending is the same, and does without a scan of the list per header
    headers = response.headers
    present = headers.raw
    if present and any(name == have for name, _ in raw for have, _ in present):
        headers.update({name.decode("latin-1"): value.decode("latin-1") for name, value in raw})
    else:
        present.extend(raw)


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
        self.gate = HttpLimit(limiter_or_rate, key=key, cost=cost, headers="none", exempt=exempt)

    async def __call__(self, websocket: WebSocket) -> Decision | None:
        return await self.message(websocket)

    async def message(self, websocket: WebSocket) -> Decision | None:
        """Spend on one connection or message; raises ``WebSocketException(1008)`` if denied."""
        decision = await self.gate.decide(_info(websocket, _route_of(websocket)))
        if decision is not None and not decision.allowed:
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
        self.limiter = limiter
        self.key = key
        self.timeout = timeout
        self.exempt = exempt

    async def __call__(self, request: Request) -> AsyncIterator[Decision | None]:
        key = await concurrency_key(_info(request, _route_of(request)), self.key, self.exempt)
        if key is None:
            yield None
            return
        slot = self.limiter.slot(key, self.timeout)
        try:
            decision = await slot.__aenter__()
        except RateLimitExceeded as exc:
            headers, body = too_many_in_flight(self.limiter.name, self.limiter.max_inflight)
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
        limiter: A Limiter, or a rate to make one from.
        key, cost, headers, exempt: As for :class:`RateLimit`.
        on_denied: Makes the response for a denied request (given a Starlette Request).
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
    ) -> None:
        self.app = app
        self.gate = HttpLimit(limiter, key=key, cost=cost, headers=headers, exempt=exempt)
        self.on_denied = on_denied
        self._route_of = _RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gate = self.gate
        request = None
        if gate.plain:  # no key function to hand a request to
            client = scope.get("client")
            decision = await gate.hit_default(client[0] if client else None, self._route_of(scope))
        else:
            request = Request(scope, receive)
            found = await gate.decide(_info(request, self._route_of(scope)))
            if found is None:
                await self.app(scope, receive, send)
                return
            decision = found
        if not decision.allowed:
            if request is None:
                request = Request(scope, receive)
            response = await rate_limited_handler(request, _denied(gate, decision, self.on_denied))
            await response(scope, receive, send)
            return
        extra = gate.policy.raw_headers(decision)

        def send_with_headers(message: Message) -> Awaitable[None]:
            # not a coroutine of its own: the app awaits send's, one frame less per message
            if message["type"] == "http.response.start":  # a copy: the app may reuse its own
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            return send(message)

        await self.app(scope, receive, send_with_headers)


def _routes(scope: Scope) -> Any:
    return getattr(getattr(scope.get("app"), "router", None), "routes", ())


def _match_route(scope: Scope) -> str:
    # Middleware runs before routing: find the route the router will pick, for its template.
    return _match_in(_routes(scope), scope, "") or UNMATCHED_ROUTE


class _RouteTemplates:
    """:func:`_match_route`, remembered: a request's template is that of the last request
    with the same method, path and root path (and Host header, if a Host route is in the
    tree), as long as the app's route tree holds the very same routes. Remembered only for
    trees of Starlette's and FastAPI's own routes, whose matching depends on nothing else."""

    LIMIT = 1024  # distinct requests remembered; raw paths (/items/1, /items/2) can be many

    def __init__(self) -> None:
        self._tree: _RouteTree | None = None
        self._found: dict[tuple[str, str, str, bytes | None], str] = {}

    def __call__(self, scope: Scope) -> str:
        routes = _routes(scope)
        tree = self._tree
        if tree is None or not tree.holds(routes):
            tree = self._tree = _RouteTree(routes)
            self._found.clear()
        # FastAPI's routes match otherwise when its router set their context in the scope
        if not tree.plain or "fastapi" in scope:
            return _match_route(scope)
        host = _host(scope) if tree.hosts else None
        key = (scope["method"], scope["path"], scope.get("root_path", ""), host)
        template = self._found.get(key)
        if template is None:
            template = _match_route(scope)
            if len(self._found) >= self.LIMIT:
                self._found.clear()
            self._found[key] = template
        return template


def _host(scope: Scope) -> bytes | None:
    # the header Starlette's Host route reads: the first one
    return next((value for name, value in scope["headers"] if name == b"host"), None)


class _RouteTree:
    """The routes of an app, and of its mounts and hosts, as they were."""

    def __init__(self, routes: Any) -> None:
        self.routes = list(routes)
        self.branches = [(route, _RouteTree(route.routes)) for route in self.routes
                         if isinstance(route, (Mount, Host))]  # fmt: skip
        known = _known_matches()
        #: Whether every route's match depends only on the method, path, root path and host.
        self.plain: bool = all(type(route).matches in known for route in self.routes) and all(
            branch.plain for _, branch in self.branches
        )
        #: Whether the Host header takes part.
        self.hosts: bool = any(isinstance(route, Host) for route in self.routes) or any(
            branch.hosts for _, branch in self.branches
        )

    def holds(self, routes: Any) -> bool:
        """Whether ``routes`` are still these, down every mount and host."""
        mine = self.routes
        if len(routes) != len(mine) or not all(map(operator.is_, routes, mine)):
            return False
        # usually no branches: no generator to make then
        return not self.branches or all(branch.holds(r.routes) for r, branch in self.branches)


def _known_matches() -> set[Any]:
    known: set[Any] = {Route.matches, WebSocketRoute.matches, Mount.matches, Host.matches}
    routing = sys.modules.get("fastapi.routing")  # imported already by any FastAPI app
    if routing is not None:
        known |= {routing.APIRoute.matches, routing.APIWebSocketRoute.matches}
    return known


def _candidates(routes: Any) -> Any:
    """``routes``, with each router that FastAPI included (one route in its app) replaced by
    its routes as included: under the include's prefix, each with its full template."""
    for route in routes:
        included = getattr(route, "effective_route_contexts", None)
        if included is None:
            yield route
            continue
        for context in included():
            yield getattr(context, "starlette_route", None) or context


def _match_in(routes: Any, scope: Scope, prefix: str) -> str | None:
    partial = None
    for route in _candidates(routes):
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        sub_routes = getattr(route, "routes", None)
        if sub_routes:  # a Mount: its own routes decide, on the path below it
            mount = str(getattr(route, "path", ""))  # a Host has routes, but no path
            found = _match_in(sub_routes, {**scope, **child}, prefix + mount)
            if found is not None:
                return found
            continue
        template = prefix + str(getattr(route, "path", ""))
        if match == Match.FULL:
            return template
        partial = partial or template  # right path, wrong method
    return partial
