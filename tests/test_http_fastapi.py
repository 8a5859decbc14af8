"""FastAPI: the dependency, the middleware and the WebSocket dependency, served by uvicorn over
real HTTP on loopback, on the memory backend and on Valkey."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Host, Match, Mount, Route, Router
from starlette.types import Scope
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from _http_servers import serve_asgi
from _servers import free_port, wait_for_http
from glidelimit import ConcurrencyLimiter, Decision, Limiter, MemoryBackend, ValkeyBackend, keys
from glidelimit._routes import RouteTemplates
from glidelimit._routes import _match as _match_route
from glidelimit.backends import Backend
from glidelimit.fastapi import ConcurrencyLimit, RateLimit, RateLimitMiddleware, WebSocketRateLimit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def limiter(backend: Backend, name: str, rates: object, **kwargs: object) -> Limiter:
    """A fixed-window limiter (exact header values), failing loudly on backend errors."""
    kwargs.setdefault("algorithm", "fixed_window")
    kwargs.setdefault("on_backend_error", "raise")
    return Limiter(rates, backend=backend, name=name, **kwargs)  # type: ignore[arg-type]


async def test_dependency_statuses_and_headers_across_a_window(
    http_backend: Backend, name: str
) -> None:
    app = FastAPI()
    limit = RateLimit(limiter(http_backend, name, "3/2s"))

    @app.get("/items/{item_id}", dependencies=[Depends(limit)])
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        responses = [await client.get(f"/items/{i}") for i in range(5)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
        assert all(r.headers["RateLimit-Policy"] == f'"{name}";q=3;w=2' for r in responses)
        assert [r.headers["RateLimit"] for r in responses] == [
            f'"{name}";r=2;t=2',
            f'"{name}";r=1;t=2',
            f'"{name}";r=0;t=2',
            f'"{name}";r=0;t=2',
            f'"{name}";r=0;t=2',
        ]
        assert responses[0].json() == {"id": 0}
        assert "Retry-After" not in responses[0].headers
        denied = responses[3]
        assert denied.headers["Retry-After"] == "2"
        assert denied.headers["content-type"] == "application/problem+json"
        assert denied.json() == {
            "type": "about:blank",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "Rate limit 3/2s exceeded; retry after 2 s.",
            "policy": name,
            "retry_after": 2,
        }
        await anyio.sleep(2.05)  # the window is over
        again = await client.get("/items/9")
        assert again.status_code == 200
        assert again.headers["RateLimit"] == f'"{name}";r=2;t=2'


async def test_routes_with_different_limits_and_decision_parameter(
    http_backend: Backend, name: str
) -> None:
    app = FastAPI()
    cheap = RateLimit(limiter(http_backend, name + "a", "5/hour"))
    dear = RateLimit(limiter(http_backend, name + "b", "1/hour"))

    @app.get("/cheap")
    async def cheap_route(decision: Decision | None = Depends(cheap)) -> dict[str, object]:
        return {"left": decision.remaining if decision is not None else None}

    @app.get("/dear", dependencies=[Depends(dear)])
    async def dear_route() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert [(await client.get("/dear")).status_code for _ in range(2)] == [200, 429]
        assert [(await client.get("/cheap")).json()["left"] for _ in range(3)] == [4, 3, 2]


async def test_multi_rate_policies_legacy_headers_and_cost(
    http_backend: Backend, name: str
) -> None:
    app = FastAPI()
    limit = RateLimit(
        limiter(http_backend, name, ["4/minute", "10/hour"]), headers="ietf+legacy", cost=2
    )

    @app.get("/", dependencies=[Depends(limit)])
    async def root() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/")
        assert r.headers["RateLimit-Policy"] == (
            f'"{name}:4/minute";q=4;w=60, "{name}:10/hour";q=10;w=3600'
        )
        assert r.headers["RateLimit"] == f'"{name}:4/minute";r=2;t=60, "{name}:10/hour";r=8;t=3600'
        assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("4", "2")
        assert r.headers["X-RateLimit-Reset"] == "60"  # delta seconds, not a timestamp
        assert (await client.get("/")).status_code == 200
        denied = await client.get("/")
        assert denied.status_code == 429
        assert denied.json()["policy"] == f"{name}:4/minute"


async def test_two_limits_on_one_route_send_the_last_ones_headers(name: str) -> None:
    app = FastAPI()
    first = RateLimit(limiter(MemoryBackend(), name + "a", "5/hour"))
    second = RateLimit(limiter(MemoryBackend(), name + "b", "3/hour"))

    @app.get("/", dependencies=[Depends(first), Depends(second)])
    async def root() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/")
        assert r.headers.get_list("RateLimit-Policy") == [f'"{name}b";q=3;w=3600']
        assert r.headers.get_list("RateLimit") == [f'"{name}b";r=2;t=3600']


async def test_one_limit_per_route_template(http_backend: Backend, name: str) -> None:
    app = FastAPI()
    limit = RateLimit(limiter(http_backend, name, "3/hour"))

    @app.get("/items/{item_id}", dependencies=[Depends(limit)])
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/other", dependencies=[Depends(limit)])
    async def other() -> dict[str, int]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        statuses = [(await client.get(f"/items/{i}")).status_code for i in range(4)]
        assert statuses == [200, 200, 200, 429]  # /items/0../items/3: one limit
        assert (await client.get("/other")).status_code == 200  # another route, another key


async def test_spoofed_forwarded_for_changes_nothing(http_backend: Backend, name: str) -> None:
    app = FastAPI()
    limit = RateLimit(limiter(http_backend, name, "2/hour"))  # default key: socket peer

    @app.get("/", dependencies=[Depends(limit)])
    async def root() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        statuses = [
            (await client.get("/", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status_code
            for i in range(4)
        ]
        statuses.append((await client.get("/", headers={"Forwarded": "for=10.9.9.9"})).status_code)
        assert statuses == [200, 200, 429, 429, 429]


async def test_trusted_proxy_is_honoured(http_backend: Backend, name: str) -> None:
    app = FastAPI()
    key = keys.client_ip(trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"])
    limit = RateLimit(limiter(http_backend, name, "1/hour"), key=key)

    @app.get("/", dependencies=[Depends(limit)])
    async def root() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:

        async def get(xff: str) -> int:
            return (await client.get("/", headers={"X-Forwarded-For": xff})).status_code

        assert await get("203.0.113.7") == 200
        assert await get("203.0.113.8") == 200  # another client behind the proxy
        # the right-most untrusted hop is the client; what it claims to the left is ignored
        assert await get("1.2.3.4, 203.0.113.7, 10.1.1.1") == 429
        assert await get("5.6.7.8, 203.0.113.7") == 429


async def test_middleware_exemptions_and_unmatched(http_backend: Backend, name: str) -> None:
    app = FastAPI()
    app.add_middleware(
        RateLimitMiddleware,
        limiter=limiter(http_backend, name, "2/hour"),
        exempt=lambda request: request.path == "/health",
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> Response:
        return JSONResponse({"id": item_id})  # a Response object: headers still added

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        checks = [await client.get("/health") for _ in range(5)]
        assert [r.status_code for r in checks] == [200] * 5
        assert "RateLimit" not in checks[0].headers
        items = [await client.get(f"/items/{i}") for i in range(3)]
        assert [r.status_code for r in items] == [200, 200, 429]
        assert items[0].headers["RateLimit"] == f'"{name}";r=1;t=3600'
        assert items[2].headers["Retry-After"] == "3600"
        assert items[2].json()["status"] == 429
        # unknown paths share one limit, however many of them there are
        assert [(await client.get(f"/nope/{i}")).status_code for i in range(3)] == [404, 404, 429]


async def test_middleware_sees_routes_added_after_it_served(name: str) -> None:
    def ok(request: Request) -> Response:
        return JSONResponse({})

    sub = Starlette(routes=[Route("/x", ok)])
    app = Starlette(routes=[Route("/a", ok), Mount("/sub", app=sub)])
    app.add_middleware(RateLimitMiddleware, limiter=limiter(MemoryBackend(), name, "1/hour"))
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/b")).status_code == 404  # spends the <unmatched> limit
        assert (await client.get("/sub/y")).status_code == 429  # unmatched too
        app.router.routes.append(Route("/b", ok))
        sub.router.routes.append(Route("/y", ok))
        assert (await client.get("/b")).status_code == 200  # a route now: its own limit
        assert (await client.get("/sub/y")).status_code == 200
        assert (await client.get("/b")).status_code == 429


def test_remembered_route_templates_are_the_matched_ones() -> None:
    def ok(request: Request) -> Response:
        return JSONResponse({})

    class Odd(Route):  # matching of its own: never remembered
        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            return super().matches(scope)

    inner = Router([Route("/items/{item_id:int}", ok, methods=["POST"])])
    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", ok, methods=["GET"]),
            Mount("/v1", app=inner),
            Host("api.example.com", app=Router([Route("/ping", ok)])),
        ]
    )
    templates = RouteTemplates()

    def check(method: str, path: str, host: bytes = b"example.com") -> str:
        scope: Scope = {
            "type": "http", "method": method, "path": path, "root_path": "",
            "headers": [(b"host", host)], "app": app,
        }  # fmt: skip
        found = templates(scope)
        assert found == _match_route(scope)
        return found

    for _ in range(2):  # found, then remembered
        assert check("GET", "/items/1") == "/items/{item_id:int}"
        assert check("POST", "/items/1") == "/items/{item_id:int}"  # wrong method: partial
        assert check("POST", "/v1/items/2") == "/v1/items/{item_id:int}"
        assert check("GET", "/ping") == "<unmatched>"
        assert check("GET", "/ping", b"api.example.com") == "/ping"
        assert check("GET", "/v1/late") == "<unmatched>"
    inner.routes.append(Route("/late", ok))
    assert check("GET", "/v1/late") == "/v1/late"
    app.router.routes.insert(0, Odd("/ping", ok))
    assert check("GET", "/ping") == "/ping"
    for i in range(RouteTemplates.LIMIT + 10):  # raw paths without end: bounded
        check("GET", f"/items/{i}")
    assert len(templates._found) <= RouteTemplates.LIMIT


async def test_on_denied_hook(name: str) -> None:
    app = FastAPI()

    def teapot(request: Request, decision: Decision) -> Response:
        return JSONResponse({"wait": decision.retry_after}, status_code=418)

    limit = RateLimit(limiter(MemoryBackend(), name, "1/hour"), on_denied=teapot)

    @app.get("/", dependencies=[Depends(limit)])
    async def root() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/")).status_code == 200
        denied = await client.get("/")
        assert denied.status_code == 418
        assert 3590 < denied.json()["wait"] <= 3600


@pytest.mark.parametrize(("policy", "status"), [("allow", 200), ("deny", 429)])
async def test_failure_policy_is_honoured(name: str, policy: str, status: int) -> None:
    dead = ValkeyBackend.from_url(f"valkey://127.0.0.1:{free_port()}")
    app = FastAPI()
    limit = RateLimit(Limiter("5/second", backend=dead, name=name, on_backend_error=policy))  # type: ignore[arg-type]

    @app.get("/", dependencies=[Depends(limit)])
    async def root() -> dict[str, str]:
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/")).status_code == status
    await dead.aclose()


async def test_websocket_connects_and_messages(name: str) -> None:
    app = FastAPI()
    connects = WebSocketRateLimit(Limiter("2/hour", backend=MemoryBackend(), name=name))
    messages = WebSocketRateLimit(Limiter("3/hour", backend=MemoryBackend(), name=name))

    @app.websocket("/ws", dependencies=[Depends(connects)])
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            await messages.message(websocket)
            await websocket.send_text(text)

    async with serve_asgi(app) as url:
        ws_url = url.replace("http", "ws") + "/ws"
        async with connect(ws_url) as socket:
            for i in range(3):
                await socket.send(str(i))
                assert await socket.recv() == str(i)
            await socket.send("one too many")
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008  # policy violation
        async with connect(ws_url):
            pass
        with pytest.raises(InvalidStatus) as refused:  # the third connect in an hour
            async with connect(ws_url):
                pass
        assert refused.value.response.status_code == 403


def test_two_uvicorn_processes_share_one_valkey_limit(valkey_url: str) -> None:
    """Two processes of examples/fastapi_app.py on one Valkey: /search allows 5 per 10 s in
    all, whichever process a request reaches."""
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / "fastapi_app.py"),
                "--url",
                valkey_url,
                "--port",
                str(port),
            ],
        )
        for port in ports
    ]
    try:
        for port, proc in zip(ports, procs):
            wait_for_http(f"http://127.0.0.1:{port}/health", proc)
        with httpx.Client() as client:
            client.get(f"http://127.0.0.1:{ports[0]}/health")
            statuses = [
                client.get(f"http://127.0.0.1:{ports[i % 2]}/search", params={"q": i}).status_code
                for i in range(12)
            ]
        assert statuses.count(200) == 5
        assert statuses[:5] == [200] * 5
        bodies = json.dumps(statuses)
        assert statuses.count(429) == 7, bodies
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


async def test_concurrency_dependency(http_backend: Backend, name: str) -> None:
    app = FastAPI()
    gate = anyio.Event()
    inflight = ConcurrencyLimit(ConcurrencyLimiter(2, backend=http_backend, name=name))

    @app.get("/slow", dependencies=[Depends(inflight)])
    async def slow() -> dict[str, str]:
        await gate.wait()
        return {}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        statuses: list[int] = []

        async def get() -> None:
            statuses.append((await client.get("/slow")).status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            tg.start_soon(get)
            await anyio.sleep(0.3)  # both in flight
            third = await client.get("/slow")
            assert third.status_code == 429
            assert third.headers["Retry-After"] == "1"
            assert third.json()["detail"] == "Too many requests in flight: at most 2 at once."
            gate.set()
        assert statuses == [200, 200]
        assert (await client.get("/slow")).status_code == 200  # the slots were given back


async def test_mounted_apps_and_host_routes_keep_their_own_limits(name: str) -> None:
    backend = MemoryBackend()
    app = FastAPI()
    for version in ("v1", "v2"):
        sub = FastAPI()
        limit = RateLimit(limiter(backend, name, "1/hour"))

        @sub.get("/items/{item_id}", dependencies=[Depends(limit)])
        async def item(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        app.mount(f"/{version}", sub)
    hosted = Starlette(
        routes=[Host("api.example.com", app=Router([Route("/ping", lambda r: JSONResponse({}))]))]
    )
    hosted.add_middleware(RateLimitMiddleware, limiter=limiter(backend, name + "h", "1/hour"))
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/v1/items/1")).status_code == 200
        assert (await client.get("/v2/items/1")).status_code == 200  # not /v1's bucket
        assert (await client.get("/v1/items/2")).status_code == 429
    async with serve_asgi(hosted) as url, httpx.AsyncClient(base_url=url) as client:
        host = {"host": "api.example.com"}
        assert (await client.get("/ping", headers=host)).status_code == 200
        assert (await client.get("/ping", headers=host)).status_code == 429


async def test_included_routers_keep_their_prefixes(name: str) -> None:
    """One router included under /v1 and /v2: two templates, two limits (dependency and
    middleware alike), and /v1/items/1 and /v1/items/2 one limit."""
    backend = MemoryBackend()
    router = APIRouter()
    limit = RateLimit(limiter(backend, name, "1/hour"))

    @router.get("/items/{item_id}", dependencies=[Depends(limit)])
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @router.get("/plain/{item_id}")
    async def plain(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app = FastAPI()
    app.include_router(router, prefix="/v1")
    app.include_router(router, prefix="/v2")
    app.add_middleware(RateLimitMiddleware, limiter=limiter(backend, name + "m", "1/hour"))
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/v1/items/1")).status_code == 200
        assert (await client.get("/v2/items/1")).status_code == 200  # not /v1's bucket
        assert (await client.get("/v1/items/2")).status_code == 429  # /v1's, by the dependency
        assert (await client.get("/v1/plain/1")).status_code == 200
        assert (await client.get("/v2/plain/1")).status_code == 200  # the middleware's too
        assert (await client.get("/v1/plain/2")).status_code == 429
    for path, template in [
        ("/v1/plain/3", "/v1/plain/{item_id}"),
        ("/v2/items/9", "/v2/items/{item_id}"),
    ]:
        scope: Scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "app": app}
        assert _match_route(scope) == template
