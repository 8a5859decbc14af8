"""Tiers: rates chosen per request or per key, changed at runtime, and named in the headers."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from fastapi import Depends, FastAPI

from _http_servers import serve_aiohttp, serve_asgi
from glidelimit import ConfigurationError, Limiter, Tiers
from glidelimit.aiohttp import rate_limit, rate_limit_middleware
from glidelimit.backends import Backend
from glidelimit.fastapi import RateLimit, RateLimitMiddleware
from glidelimit.keys import RequestInfo


def plans() -> Tiers:
    return Tiers({"free": "2/minute", "pro": ["5/minute", "100/day"]}, default="free")


async def allowed(limiter: Limiter, key: str, n: int, **kwargs: object) -> int:
    return sum([(await limiter.hit(key, **kwargs)).allowed for _ in range(n)])  # type: ignore[arg-type]


async def test_each_tier_has_its_rates(backend: Backend, name: str) -> None:
    limiter = Limiter(plans(), backend=backend, name=name)
    assert await allowed(limiter, "a", 4) == 2  # the default tier: free
    assert await allowed(limiter, "b", 7, tier="pro") == 5
    d = await limiter.hit("b", tier="pro")
    assert (d.allowed, d.limit, [str(s.rate) for s in d.rates]) == (
        False, 5, ["5/minute", "100/day"],
    )  # fmt: skip


async def test_a_key_that_changes_tier_starts_afresh_there(backend: Backend, name: str) -> None:
    limiter = Limiter(plans(), backend=backend, name=name)
    assert await allowed(limiter, "k", 3, tier="free") == 2  # exhausted on free
    assert await allowed(limiter, "k", 6, tier="pro") == 5  # upgraded: a fresh pro counter
    assert await allowed(limiter, "k", 1, tier="free") == 0  # back on free: still exhausted
    await limiter.reset("k")  # every tier
    assert await allowed(limiter, "k", 1, tier="free") == 1
    assert await allowed(limiter, "k", 1, tier="pro") == 1


async def test_rates_changed_at_runtime_apply_to_the_next_decision(
    backend: Backend, name: str
) -> None:
    tiers = plans()
    limiter = Limiter(tiers, backend=backend, name=name)
    assert await allowed(limiter, "k", 3, tier="pro") == 3
    tiers["pro"] = "10/minute"  # a new rate: its own counters, from the next decision on
    assert await allowed(limiter, "k", 12, tier="pro") == 10
    tiers["enterprise"] = "50/minute"  # a new tier
    assert await allowed(limiter, "k", 1, tier="enterprise") == 1


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_lookup_picks_the_tier_of_a_key(
    backend: Backend, name: str, is_async: bool
) -> None:
    paying = {"user:1"}

    def sync_lookup(key: str) -> str:
        return "pro" if key in paying else "free"

    async def async_lookup(key: str) -> str:
        return sync_lookup(key)

    lookup = async_lookup if is_async else sync_lookup
    limiter = Limiter(Tiers(plans(), lookup=lookup), backend=backend, name=name)
    assert await allowed(limiter, "user:1", 7) == 5
    assert await allowed(limiter, "user:2", 7) == 2
    paying.add("user:2")  # upgraded, at runtime
    assert await allowed(limiter, "user:2", 7) == 5
    with pytest.raises(ConfigurationError, match="gold"):
        await Limiter(Tiers(plans(), lookup=lambda key: "gold"), name=name).hit("k")


async def test_acquire_and_peek_in_a_tier(backend: Backend, name: str) -> None:
    limiter = Limiter(plans(), backend=backend, name=name)
    await limiter.acquire("k", cost=5, tier="pro")
    assert (await limiter.peek("k", cost=0, tier="pro")).remaining == 0
    assert (await limiter.peek("k", cost=0)).remaining == 2  # free is untouched


def test_bad_tiers_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="non-empty mapping"):
        Tiers({})
    with pytest.raises(ConfigurationError, match="tier name"):
        Tiers({"a:b": "1/s"})
    with pytest.raises(ConfigurationError, match="default tier"):
        Tiers({"a": "1/s"}, default="b")
    with pytest.raises(ConfigurationError, match="cannot parse rate"):
        Tiers({"a": "lots"})
    with pytest.raises(ConfigurationError, match="burst"):
        Limiter(plans(), burst=3)
    with pytest.raises(ConfigurationError, match="no tiers"):
        Limiter("1/s").keys("k", tier="pro")


def plan_of(request: RequestInfo) -> str:
    return request.headers.get("x-plan", "free")


async def test_fastapi_dependency_and_middleware_name_each_tier(
    http_backend: Backend, name: str
) -> None:
    app = FastAPI()
    app.add_middleware(
        RateLimitMiddleware,
        limiter=Limiter(plans(), backend=http_backend, name=f"{name}-app"),
        tier=plan_of,
    )
    search = RateLimit(Limiter(plans(), backend=http_backend, name=name), tier=plan_of)

    @app.get("/search", dependencies=[Depends(search)])
    async def run_search() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        free = await client.get("/search")
        pro = await client.get("/search", headers={"X-Plan": "pro"})
        statuses = [(await client.get("/search")).status_code for _ in range(2)]
    assert free.headers.get_list("RateLimit-Policy") == ['"free";q=2;w=60'] * 2
    assert (
        pro.headers.get_list("RateLimit-Policy")
        == ['"pro:5/minute";q=5;w=60, "pro:100/day";q=100;w=86400'] * 2
    )
    assert (
        pro.headers.get_list("RateLimit")[0] == '"pro:5/minute";r=4;t=12, "pro:100/day";r=99;t=864'
    )
    assert statuses == [200, 429]


async def test_aiohttp_middleware_and_decorator_name_each_tier(
    http_backend: Backend, name: str
) -> None:
    app = web.Application(
        middlewares=[rate_limit_middleware(Limiter(plans(), backend=http_backend, name=name),
                                           tier=plan_of)]
    )  # fmt: skip

    @rate_limit(Limiter(plans(), backend=http_backend, name=f"{name}-x"), tier="pro")
    async def item(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", item)
    async with serve_aiohttp(app) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/", headers={"X-Plan": "pro"})
        free = [(await client.get("/")).status_code for _ in range(3)]
    assert (
        r.headers.get_list("RateLimit-Policy")
        == ['"pro:5/minute";q=5;w=60, "pro:100/day";q=100;w=86400'] * 2
    )
    assert free == [200, 200, 429]
    with pytest.raises(ConfigurationError, match="unknown tier"):
        rate_limit(Limiter(plans(), name=name), tier="gold")(item)
