"""Key functions: which bucket a request counts against.

A key function takes a :class:`RequestInfo` and returns a string (sync or async). Returning
None leaves the request unlimited, so the functions here fall back to the client's address
rather than return None. The default key is ``combine(client_ip(), route())``: each client,
on each route template (``/items/{id}`` is one limit, whatever the id).

>>> from glidelimit import keys
>>> key = keys.combine(keys.header("X-API-Key"), keys.route())
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Literal

from ._errors import ConfigurationError
from ._request_info import CostFunc, ExemptFunc, KeyFunc, RequestInfo, TierFunc, resolve

__all__ = [
    "CostFunc",
    "ExemptFunc",
    "KeyFunc",
    "RequestInfo",
    "TierFunc",
    "client_ip",
    "combine",
    "default",
    "header",
    "route",
    "user",
]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(
    trusted_proxies: Iterable[str] = (),
    *,
    header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
) -> KeyFunc:
    """The client's IP address.

    By default the socket peer. Only when the peer is one of ``trusted_proxies`` (CIDRs such
    as ``"10.0.0.0/8"`` or addresses) is ``header`` read, from the right: the client is the
    right-most hop that is not a trusted proxy. A header sent by an untrusted peer changes
    nothing, so clients cannot pick their own bucket.

    Args:
        trusted_proxies: The proxies whose forwarding header is believed.
        header: The header those proxies append to: ``"x-forwarded-for"`` (nginx, most load
            balancers) or ``"forwarded"`` (RFC 7239). Only that one is read: a proxy passes
            the other through as the client sent it.

    Raises:
        ConfigurationError: If a trusted proxy is not an address or a network, or the
            header is neither of those two.
    """
    if header not in ("x-forwarded-for", "forwarded"):
        raise ConfigurationError(f"header must be 'x-forwarded-for' or 'forwarded', got {header!r}")
    networks: list[_Network] = []
    for text in [trusted_proxies] if isinstance(trusted_proxies, str) else trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"trusted proxy {text!r} is not an IP address or network (e.g. '10.0.0.0/8')"
            ) from None

    def trusted(host: str | None) -> bool:
        address = _parse(host)
        return address is not None and any(address in net for net in networks)

    def key(request: RequestInfo) -> str:
        host = request.client_host
        if networks and trusted(host):
            for hop in reversed(_forwarded_for(request, header)):
                host = hop
                if not trusted(hop):
                    break
        return _ip_key(host)

    return key


def _ip_key(host: str | None) -> str:
    address = _parse(host)
    return f"ip:{address if address is not None else host or 'unknown'}"


def _forwarded_for(request: RequestInfo, header: str) -> list[str]:
    value = request.headers.get(header, "")
    if header == "forwarded":  # RFC 7239: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"
        hops = []
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, text = pair.strip().partition("=")
                if name.lower() == "for":
                    hops.append(text.strip().strip('"'))
        return hops
    return [hop.strip() for hop in value.split(",") if hop.strip()]


@functools.lru_cache(maxsize=4096)  # the same few clients and proxies ask again and again
def _parse(host: str | None) -> _Address | None:
    if not host:
        return None
    text = host
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def header(name: str, *, fallback: KeyFunc | None = None) -> KeyFunc:
    """The value of request header ``name`` (e.g. an API key).

    Args:
        name: The header's name (any case).
        fallback: Used when the header is missing; default ``client_ip()``.
    """
    lower = name.lower()
    otherwise = client_ip() if fallback is None else fallback

    async def key(request: RequestInfo) -> str | None:
        value = request.headers.get(lower)
        if value is None:
            return await resolve(otherwise(request))
        return f"{lower}:{value}"

    return key


def user(*, fallback: KeyFunc | None = None) -> KeyFunc:
    """The authenticated user (Starlette's ``request.user``, aiohttp's ``request["user"]``).

    Args:
        fallback: Used for anonymous requests; default ``client_ip()``.
    """
    otherwise = client_ip() if fallback is None else fallback

    async def key(request: RequestInfo) -> str | None:
        identity = request.user
        if identity is None:
            return await resolve(otherwise(request))
        return f"user:{identity}"

    return key


def route() -> KeyFunc:
    """The route's template (``/items/{id}``), never the raw path."""

    def key(request: RequestInfo) -> str:
        return f"route:{request.route}"

    return key


def combine(*funcs: KeyFunc) -> KeyFunc:
    """A key made of several: e.g. ``combine(client_ip(), route())``, a limit per client per
    route. None from any part leaves the request unlimited."""
    if not funcs:
        raise ConfigurationError("combine() needs at least one key function")

    async def key(request: RequestInfo) -> str | None:
        parts = []
        for func in funcs:
            part = await resolve(func(request))
            if part is None:
                return None
            if not isinstance(part, str):
                raise ConfigurationError(f"key function {func!r} returned {part!r}, not a str")
            parts.append(_escape(part))
        return "|".join(parts)

    return key


def _escape(part: str) -> str:
    # escaped, so that no two lists of parts give the same key
    return part.replace("\\", "\\\\").replace("|", "\\|")


def default() -> KeyFunc:
    """The default key: the client's IP (socket peer) on the route template; what
    ``combine(client_ip(), route())`` gives, computed at once."""
    return _default


def _default(request: RequestInfo) -> str:
    return _client_on_route(request.client_host, request.route)


@functools.lru_cache(maxsize=4096)  # the same few clients on the same few routes
def _client_on_route(client_host: str | None, template: str | None) -> str:
    return f"{_escape(_ip_key(client_host))}|{_escape(f'route:{template}')}"
