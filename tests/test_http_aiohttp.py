"""aiohttp: the middleware and the decorator, on aiohttp's own server over real HTTP."""

from __future__ import annotations

import anyio
import httpx
from aiohttp import web

from _http_servers import serve_aiohttp
from glidelimit import ConcurrencyLimiter, Decision, keys
from glidelimit.aiohttp import concurrency_limit_middleware, rate_limit, rate_limit_middleware
from glidelimit.backends import Backend
from test_http_fastapi import limiter


async def test_middleware_statuses_headers_and_route_template(
    http_backend: Backend, name: str
) -> None:
    app = web.Application(
        middlewares=[
            rate_limit_middleware(
                limiter(http_backend, name, "3/hour"), exempt=lambda r: r.path == "/health"
            )
        ]
    )

    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["item_id"]})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app.router.add_get("/items/{item_id}", item)
    app.router.add_get("/health", health)
    app.router.add_get("/missing", missing)
    async with serve_aiohttp(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert [(await client.get("/health")).status_code for _ in range(5)] == [200] * 5
        items = [await client.get(f"/items/{i}") for i in range(4)]  # one route template
        assert [r.status_code for r in items] == [200, 200, 200, 429]
        assert items[0].headers["RateLimit-Policy"] == f'"{name}";q=3;w=3600'
        assert items[0].headers["RateLimit"] == f'"{name}";r=2;t=3600'
        denied = items[3]
        assert denied.headers["Retry-After"] == "3600"
        assert denied.headers["content-type"] == "application/problem+json"
        assert denied.json()["detail"] == "Rate limit 3/hour exceeded; retry after 3600 s."
        # an error response raised by the handler carries the headers too
        error = await client.get("/missing")
        assert error.status_code == 404
        assert error.headers["RateLimit"] == f'"{name}";r=2;t=3600'


async def test_decorator_and_spoofing(http_backend: Backend, name: str) -> None:
    limited = rate_limit(limiter(http_backend, name, "2/hour"), headers="ietf+legacy")
    trusted = rate_limit(
        limiter(http_backend, name + "p", "1/hour"),
        key=keys.client_ip(trusted_proxies=["127.0.0.1"]),
    )

    @limited
    async def spoofable(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    @trusted
    async def proxied(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def free(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/limited", spoofable)
    app.router.add_get("/proxied", proxied)
    app.router.add_get("/free", free)
    async with serve_aiohttp(app) as url, httpx.AsyncClient(base_url=url) as client:
        statuses = [
            (await client.get("/limited", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status_code
            for i in range(3)
        ]
        assert statuses == [200, 200, 429]  # an untrusted peer's header changes nothing
        r = await client.get("/free")
        assert (r.status_code, "RateLimit" in r.headers) == (200, False)
        ok = await client.get("/limited")
        assert ok.headers["X-RateLimit-Remaining"] == "0"
        first = await client.get("/proxied", headers={"X-Forwarded-For": "198.51.100.1"})
        other = await client.get("/proxied", headers={"X-Forwarded-For": "198.51.100.2"})
        again = await client.get("/proxied", headers={"X-Forwarded-For": "198.51.100.1:555"})
        assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)


async def test_on_denied_and_cost(name: str, http_backend: Backend) -> None:
    def busy(request: web.Request, decision: Decision) -> web.Response:
        return web.Response(status=503, text=f"busy for {decision.retry_after:.0f}s")

    app = web.Application(
        middlewares=[
            rate_limit_middleware(
                limiter(http_backend, name, "5/hour"),
                cost=lambda r: int(r.headers.get("x-cost", "1")),
                on_denied=busy,
            )
        ]
    )

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", root)
    async with serve_aiohttp(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/", headers={"x-cost": "4"})).status_code == 200
        denied = await client.get("/", headers={"x-cost": "2"})
        assert (denied.status_code, denied.text) == (503, "busy for 3600s")
        assert (await client.get("/")).status_code == 200


async def test_concurrency_middleware(http_backend: Backend, name: str) -> None:
    gate = anyio.Event()
    app = web.Application(
        middlewares=[
            concurrency_limit_middleware(ConcurrencyLimiter(1, backend=http_backend, name=name))
        ]
    )

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(text="done")

    app.router.add_get("/slow", slow)
    async with serve_aiohttp(app) as url, httpx.AsyncClient(base_url=url) as client:
        first: list[int] = []

        async def get() -> None:
            first.append((await client.get("/slow")).status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            await anyio.sleep(0.3)
            refused = await client.get("/slow")
            assert (refused.status_code, refused.headers["Retry-After"]) == (429, "1")
            assert refused.headers["content-type"] == "application/problem+json"
            gate.set()
        assert first == [200]
        assert (await client.get("/slow")).status_code == 200
