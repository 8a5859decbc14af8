"""Key functions, on requests built by hand."""

from __future__ import annotations

import pytest

from glidelimit import ConfigurationError, keys
from glidelimit._request_info import resolve
from glidelimit.keys import RequestInfo


def request(peer: str | None = "203.0.113.9", route: str = "/r", **headers: str) -> RequestInfo:
    return RequestInfo(
        native=None,
        client_host=peer,
        method="GET",
        path="/r",
        route=route,
        raw_headers=lambda: [(k.replace("_", "-"), v) for k, v in headers.items()],
        user=lambda: headers.get("user"),
    )


PROXIES = ["10.0.0.0/8", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("203.0.113.9", {"X_Forwarded_For": "1.1.1.1"}, "ip:203.0.113.9"),  # untrusted peer
        ("10.0.0.1", {"X_Forwarded_For": "1.1.1.1"}, "ip:1.1.1.1"),
        ("10.0.0.1", {"X_Forwarded_For": "6.6.6.6, 1.1.1.1, 10.2.2.2"}, "ip:1.1.1.1"),
        ("10.0.0.1", {"X_Forwarded_For": "10.3.3.3, 10.2.2.2"}, "ip:10.3.3.3"),  # all trusted
        ("10.0.0.1", {}, "ip:10.0.0.1"),
        # a Forwarded header the proxy passed through from the client is not read
        ("10.0.0.1", {"Forwarded": "for=1.1.1.1", "X_Forwarded_For": "7.7.7.7"}, "ip:7.7.7.7"),
        ("10.0.0.1", {"Forwarded": "for=1.1.1.1"}, "ip:10.0.0.1"),
        ("::ffff:10.0.0.1", {"X_Forwarded_For": "1.1.1.1"}, "ip:1.1.1.1"),  # v4-mapped peer
        ("10.0.0.1", {"X_Forwarded_For": "unknown"}, "ip:unknown"),
        (None, {}, "ip:unknown"),
    ],
)  # fmt: skip
async def test_client_ip(peer: str | None, headers: dict[str, str], expected: str) -> None:
    assert await key(keys.client_ip(trusted_proxies=PROXIES), request(peer, **headers)) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Forwarded": 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711", for=1.2.3.4:80'},
         "ip:1.2.3.4"),
        ({"Forwarded": 'for="[2001:db9::1]:4711";proto=https'}, "ip:2001:db9::1"),
        ({"Forwarded": "for=1.1.1.1", "X_Forwarded_For": "7.7.7.7"}, "ip:1.1.1.1"),
    ],
)  # fmt: skip
async def test_client_ip_from_forwarded(headers: dict[str, str], expected: str) -> None:
    func = keys.client_ip(trusted_proxies=PROXIES, header="forwarded")
    assert await key(func, request("10.0.0.1", **headers)) == expected


def test_client_ip_rejects_bad_proxies() -> None:
    with pytest.raises(ConfigurationError, match=r"'10\.0\.0\.300'"):
        keys.client_ip(trusted_proxies=["10.0.0.300"])
    with pytest.raises(ConfigurationError, match="x-real-ip"):
        keys.client_ip(header="x-real-ip")  # type: ignore[arg-type]


async def key(func: keys.KeyFunc, r: RequestInfo) -> object:
    return await resolve(func(r))


async def test_header_user_route_combine() -> None:
    r = request(X_Api_Key="k1", user="alice", route="/items/{id}")
    assert await key(keys.header("x-api-key"), r) == "x-api-key:k1"
    assert await key(keys.header("missing"), r) == "ip:203.0.113.9"
    assert await key(keys.user(), r) == "user:alice"
    assert await key(keys.user(), request()) == "ip:203.0.113.9"
    assert await key(keys.route(), r) == "route:/items/{id}"
    assert await key(keys.default(), r) == "ip:203.0.113.9|route:/items/{id}"


async def test_combine_escapes_and_accepts_async() -> None:
    async def part(r: RequestInfo) -> str:
        return "a|b"

    def other(r: RequestInfo) -> str:
        return "c"

    def none(r: RequestInfo) -> None:
        return None

    assert await key(keys.combine(part, other), request()) == "a\\|b|c"
    assert await key(keys.combine(other, part), request()) == "c|a\\|b"
    assert await key(keys.combine(part, none), request()) is None
    with pytest.raises(ConfigurationError):
        keys.combine()


@pytest.mark.parametrize(
    "peer",
    ["203.0.113.9", "::ffff:10.0.0.1", "[2001:db8::1]:443", "1.2.3.4:80", "a|b\\c", "", None],
)
@pytest.mark.parametrize("route", ["/items/{id}", "/a|b", "/x\\y|", "<unmatched>"])
async def test_default_key_is_client_ip_on_route(peer: str | None, route: str) -> None:
    # default() computes at once what combine(client_ip(), route()) gives
    combined = keys.combine(keys.client_ip(), keys.route())
    r = request(peer, route)
    assert await key(keys.default(), r) == await key(combined, r)
