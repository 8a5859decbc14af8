"""A FastAPI app limited by glidelimit: a middleware for every route, a dependency for one.

pip install -e '.[cli]'
python examples/fastapi_app.py                                  # in-memory limits
python examples/fastapi_app.py --url valkey://127.0.0.1:6379    # shared by every process
curl -i http://127.0.0.1:8000/items/1
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import Depends, FastAPI

from glidelimit import Decision, Limiter, MemoryBackend, ValkeyBackend
from glidelimit.backends import Backend
from glidelimit.fastapi import RateLimit, RateLimitMiddleware


def create_app(url: str | None = None) -> FastAPI:
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    app = FastAPI(title="glidelimit example")
    # Every route: 100 requests a minute per client IP per route template; /health is free.
    app.add_middleware(
        RateLimitMiddleware,
        limiter=Limiter("100/minute", backend=backend, name="app"),
        exempt=lambda request: request.path == "/health",
    )
    # Search is expensive: 5 per 10 s and 50 an hour, on top of the app-wide limit.
    search = RateLimit(Limiter(["5/10s", "50/hour"], backend=backend, name="search"))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/search")
    async def run_search(q: str, decision: Decision | None = Depends(search)) -> dict[str, object]:
        left = decision.remaining if decision is not None else None
        return {"query": q, "results": [], "searches_left": left}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a Valkey URL (default: in-memory)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    # proxy_headers=False: client addresses come from the socket; to trust a proxy's
    # X-Forwarded-For, give keys.client_ip(trusted_proxies=[...]) to the limits instead
    uvicorn.run(
        create_app(args.url),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        proxy_headers=False,
    )
