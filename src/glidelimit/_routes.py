"""Starlette's (and FastAPI's) route templates, found before the router runs: what the
middleware keys a request on (``/items/{id}``, never ``/items/1``)."""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterator
from typing import Any

from starlette.routing import Host, Match, Mount, Route, WebSocketRoute
from starlette.types import Scope

from ._request_info import UNMATCHED_ROUTE


def routed_template(scope: Scope) -> str:
    """The template of the route the router picked (in a dependency, after routing)."""
    # FastAPI runs a route of an included router as it was declared, and keeps the template
    # with the include's prefix apart.
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    # a mounted app's routes are relative to its mount: /v1 and /v2 must not share a key
    return str(scope.get("root_path", "")) + path


class RouteTemplates:
    """The template of the route a request will reach, found as the router will find it.

    Remembered: a request's template is that of the last request with the same method, path
    and root path (and Host header, if a Host route is in the tree), as long as the app's
    route tree holds the very same routes. Remembered only for trees of Starlette's and
    FastAPI's own routes, whose matching depends on nothing else.
    """

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
            return _match(scope)
        host = _host(scope) if tree.hosts else None
        key = (scope["method"], scope["path"], scope.get("root_path", ""), host)
        template = self._found.get(key)
        if template is None:
            template = _match(scope)
            if len(self._found) >= self.LIMIT:
                self._found.clear()
            self._found[key] = template
        return template


def _routes(scope: Scope) -> Any:
    return getattr(getattr(scope.get("app"), "router", None), "routes", ())


def _match(scope: Scope) -> str:
    return _match_in(_routes(scope), scope, "") or UNMATCHED_ROUTE


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
        return all(branch.holds(r.routes) for r, branch in self.branches)


def _known_matches() -> set[Any]:
    known: set[Any] = {Route.matches, WebSocketRoute.matches, Mount.matches, Host.matches}
    routing = sys.modules.get("fastapi.routing")  # imported already by any FastAPI app
    if routing is not None:
        known |= {routing.APIRoute.matches, routing.APIWebSocketRoute.matches}
    return known


def _candidates(routes: Any) -> Iterator[Any]:
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
