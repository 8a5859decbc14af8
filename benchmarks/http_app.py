"""One trivial FastAPI endpoint, GET /ping, with one of several rate limiters in front of it.

    python benchmarks/http_app.py VARIANT --port 8000 [--url valkey://127.0.0.1:6379]

VARIANT: none, noop-dependency (a dependency that does nothing: FastAPI's own cost of one),
one-get-dependency and one-get-middleware (a dependency, or a middleware, that awaits one GET
through glide and adds two RateLimit headers: a limiter that makes one plain round trip per
request and costs nothing more), wait-middleware (the same, awaiting a future that the event
loop sets instead of a GET: the floor of any limiter that waits for an answer),
glidelimit-memory, glidelimit-valkey (glidelimit's RateLimit dependency),
glidelimit-memory-middleware, glidelimit-valkey-middleware (its RateLimitMiddleware instead),
glidelimit-memory-middleware-fixed and glidelimit-valkey-middleware-lease (the middleware with
a fixed window, and on Valkey with a lease: the load is one client on one route, one hot key),
slowapi (its in-memory storage), fastapi-limiter (pyrate-limiter's Redis bucket, on the same
Valkey). Each limit is far above the load, so every request is allowed and what is measured
is the limiter's cost.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import Depends, FastAPI, Request, Response

# this checkout's glidelimit, even where the one installed is another checkout's
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

LIMIT = "1000000000/hour"
REFERENCES = ("one-get-dependency", "one-get-middleware", "wait-middleware")


def create_app(variant: str, url: str) -> FastAPI:
    if variant == "none":
        app = FastAPI()

        @app.get("/ping")
        async def ping() -> dict[str, str]:
            return {"pong": "ok"}

        return app

    if variant == "noop-dependency":
        # not a limiter: what FastAPI spends on a dependency of a route's, with the Request and
        # Response parameters that RateLimit takes; every dependency-based limiter pays it
        app = FastAPI()

        async def noop(request: Request, response: Response) -> None:
            return None

        @app.get("/ping", dependencies=[Depends(noop)])
        async def ping() -> dict[str, str]:
            return {"pong": "ok"}

        return app

    if variant in REFERENCES:
        # not limiters: a middleware or a dependency that waits for one answer per request and
        # adds a RateLimit-Policy and a RateLimit header, and does nothing else
        import asyncio

        from glide import GlideClient, GlideClientConfiguration, NodeAddress
        from starlette.types import ASGIApp, Message, Receive, Scope, Send

        round_trip = variant.startswith("one-get")  # else the wait has no I/O, and no client
        clients: list[GlideClient] = []
        policy = (b"ratelimit-policy", b'"bench";q=1000000000;w=3600')
        served = [0]

        async def answer() -> list[tuple[bytes, bytes]]:
            if round_trip:  # one GET through glide: a Valkey round trip
                await clients[0].get("bench:get")
            else:  # a future that the event loop sets: waiting, and no I/O
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                loop.call_soon(future.set_result, None)
                await future
            served[0] += 1
            return [policy, (b"ratelimit", b'"bench";r=%d;t=3600' % served[0])]

        class Reference:
            def __init__(self, app: ASGIApp) -> None:
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                extra = await answer()

                def add_headers(message: Message) -> Awaitable[None]:
                    if message["type"] == "http.response.start":
                        message = {**message, "headers": [*message.get("headers", ()), *extra]}
                    return send(message)

                await self.app(scope, receive, add_headers)

        async def reference(request: Request, response: Response) -> None:
            response.headers.raw.extend(await answer())

        @asynccontextmanager
        async def connect(app: FastAPI) -> AsyncIterator[None]:
            if not round_trip:
                yield
                return
            host, port = url.removeprefix("valkey://").split(":")
            config = GlideClientConfiguration([NodeAddress(host, int(port))])
            clients.append(await GlideClient.create(config))
            yield
            await clients[0].close()

        app = FastAPI(lifespan=connect)
        dependencies = []
        if variant.endswith("-middleware"):
            app.add_middleware(Reference)
        else:
            dependencies = [Depends(reference)]

        @app.get("/ping", dependencies=dependencies)
        async def ping() -> dict[str, str]:
            return {"pong": "ok"}

        return app

    if variant.startswith("glidelimit"):
        from glidelimit import Limiter, MemoryBackend, ValkeyBackend
        from glidelimit.fastapi import RateLimit, RateLimitMiddleware

        memory = variant.startswith("glidelimit-memory")
        backend = MemoryBackend() if memory else ValkeyBackend.from_url(url)
        lease = variant.endswith("-lease")
        fixed = lease or variant.endswith("-fixed")
        limiter = Limiter(
            LIMIT, backend=backend, name="bench", lease=lease,
            algorithm="fixed_window" if fixed else "gcra",
        )  # fmt: skip
        app = FastAPI()
        if "-middleware" in variant:
            app.add_middleware(RateLimitMiddleware, limiter=limiter)
            dependencies = []
        else:
            dependencies = [Depends(RateLimit(limiter))]

        @app.get("/ping", dependencies=dependencies)
        async def ping() -> dict[str, str]:
            return {"pong": "ok"}

        return app

    if variant == "slowapi":
        from slowapi import Limiter as SlowLimiter
        from slowapi import _rate_limit_exceeded_handler
        from slowapi.errors import RateLimitExceeded
        from slowapi.util import get_remote_address

        slow = SlowLimiter(key_func=get_remote_address)
        app = FastAPI()
        app.state.limiter = slow
        app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

        @app.get("/ping")
        @slow.limit(LIMIT)
        async def ping(request: Request) -> dict[str, str]:
            return {"pong": "ok"}

        return app

    if variant == "fastapi-limiter":
        from fastapi_limiter.depends import RateLimiter
        from pyrate_limiter import Duration, Rate, RedisBucket
        from pyrate_limiter import Limiter as PyrateLimiter
        from redis.asyncio import Redis

        holder: dict[str, RateLimiter] = {}

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            redis = Redis.from_url(url.replace("valkey://", "redis://"))
            bucket = await RedisBucket.init([Rate(1_000_000_000, Duration.HOUR)], redis, "bench")
            holder["limiter"] = RateLimiter(PyrateLimiter(bucket))
            yield
            await redis.aclose()

        app = FastAPI(lifespan=lifespan)

        async def limit(request: Request) -> None:
            await holder["limiter"](request, Response())

        @app.get("/ping", dependencies=[Depends(limit)])
        async def ping() -> dict[str, str]:
            return {"pong": "ok"}

        return app

    raise SystemExit(f"unknown variant {variant!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--url", default="valkey://127.0.0.1:6379")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.variant, args.url), host="127.0.0.1", port=args.port,
        log_level="warning", access_log=False, proxy_headers=False,
    )  # fmt: skip
