# pyright: strict
"""The documented ways of calling glidelimit, as users write them (lambdas included), checked
by ``nox -s types`` with pyright in strict mode: a key, cost, exemption or tier function whose
parameter a type checker cannot infer fails there. Never run: pytest does not collect it."""

from __future__ import annotations

from aiohttp import web
from fastapi import Depends, FastAPI

from glidelimit import (
    ConcurrencyLimiter,
    Decision,
    Limiter,
    MemoryBackend,
    Tiers,
    ValkeyBackend,
    keys,
)
from glidelimit.aiohttp import rate_limit, rate_limit_middleware
from glidelimit.fastapi import RateLimit, RateLimitMiddleware


def fastapi_app() -> FastAPI:
    backend = ValkeyBackend.from_url("valkey://127.0.0.1:6379")
    app = FastAPI()
    app.add_middleware(
        RateLimitMiddleware,
        limiter=Limiter("1000/minute", backend=backend, name="app"),
        exempt=lambda request: request.path == "/health",
    )
    search = RateLimit(
        Limiter(["5/10s", "50/hour"], backend=backend, name="search"),
        key=keys.combine(keys.header("X-API-Key"), keys.route()),
        cost=lambda request: int(request.headers.get("x-rows", "1000")) // 1000 + 1,
    )
    plans = Tiers({"free": "100/minute", "pro": ["1000/minute", "20000/day"]}, default="free")
    tiered = RateLimit(
        Limiter(plans, backend=backend, name="plans"),
        tier=lambda request: "pro" if request.headers.get("x-plan") == "pro" else "free",
    )

    @app.get("/search", dependencies=[Depends(search), Depends(tiered)])
    async def run_search(q: str) -> dict[str, str]:
        return {"q": q}

    return app


def aiohttp_app() -> web.Application:
    app = web.Application(
        middlewares=[rate_limit_middleware("1000/minute", exempt=lambda r: r.path == "/health")]
    )

    @rate_limit("10/minute", key=lambda request: request.headers.get("x-api-key"))
    async def expensive(request: web.Request) -> web.Response:
        return web.Response(text="done")

    app.router.add_get("/expensive", expensive)
    return app


async def worker() -> int:
    backend = MemoryBackend()
    payments = Limiter("100/second", backend=backend, name="payments")
    decision: Decision = await payments.acquire("stripe", timeout=30)

    @payments.throttle(key=lambda order_id: f"order:{order_id}", cost=lambda order_id: 1)
    async def charge(order_id: int) -> str:
        return f"charged {order_id}"

    await charge(42)
    reports = ConcurrencyLimiter(4, lease=30, backend=backend, name="reports")
    async with reports.slot("tenant:7", timeout=10) as slot:
        assert slot.allowed
    await backend.aclose()
    return decision.remaining
