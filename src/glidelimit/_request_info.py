"""A request as key functions, cost functions and exemptions see it, in every framework."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import cached_property
from typing import TypeAlias, TypeVar

T = TypeVar("T")

UNMATCHED_ROUTE = "<unmatched>"  # one shared limit for every path no route matches


class RequestInfo:
    """A request as key functions, cost functions and exemptions see it, in every framework.

    >>> def by_tenant(request: RequestInfo) -> str:
    ...     return request.headers.get("x-tenant", "anonymous")

    Attributes:
        native: The framework's own request object (Starlette's Request or WebSocket,
            aiohttp's web.Request), for what this class does not carry.
        client_host: The socket peer's address (not a forwarded one: see
            ``keys.client_ip``).
        method: The HTTP method.
        path: The raw path; never a good key on its own (``/items/1``, ``/items/2``, ...).
        route: The route's template (``/items/{id}``), or ``"<unmatched>"``.
    """

    __slots__ = ("__dict__", "_raw_headers", "_user", "client_host", "method", "native", "path",
                 "route")  # fmt: skip

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
        self.native: object = native
        self.client_host: str | None = client_host
        self.method: str = method
        self.path: str = path
        self.route: str | None = route
        self._raw_headers = raw_headers
        self._user = user

    def __repr__(self) -> str:
        return (
            f"RequestInfo({self.method} {self.path!r}, route={self.route!r}, "
            f"client_host={self.client_host!r})"
        )

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


#: A key function: the request's bucket (None leaves it unlimited); sync or async.
KeyFunc: TypeAlias = Callable[[RequestInfo], "str | Awaitable[str | None] | None"]
#: A cost function: what the request costs; sync or async.
CostFunc: TypeAlias = Callable[[RequestInfo], "int | Awaitable[int]"]
#: An exemption: True leaves the request unlimited; sync or async.
ExemptFunc: TypeAlias = Callable[[RequestInfo], "bool | Awaitable[bool]"]
#: A tier function: the tier whose rates decide the request (the user's plan); sync or async.
TierFunc: TypeAlias = Callable[[RequestInfo], "str | Awaitable[str]"]


async def resolve(value: T | Awaitable[T]) -> T:
    """The value of a sync or async callable's result."""
    if inspect.isawaitable(value):
        return await value
    return value
