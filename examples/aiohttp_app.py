"""An aiohttp app limited by glidelimit: a middleware for every route, a decorator for one.

pip install -e '.[aiohttp]'
python examples/aiohttp_app.py                                  # in-memory limits
python examples/aiohttp_app.py --url valkey://127.0.0.1:6379
curl -i http://127.0.0.1:8080/items/1
"""

from __future__ import annotations

import argparse

from aiohttp import web

from glidelimit import Limiter, MemoryBackend, ValkeyBackend
from glidelimit.aiohttp import rate_limit, rate_limit_middleware
from glidelimit.backends import Backend


def create_app(url: str | None = None) -> web.Application:
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    everything = Limiter("100/minute", backend=backend, name="app")
    app = web.Application(
        middlewares=[rate_limit_middleware(everything, exempt=lambda r: r.path == "/health")]
    )
    routes = web.RouteTableDef()

    @routes.get("/health")
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @routes.get("/items/{item_id}")
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["item_id"])})

    @routes.get("/search")
    @rate_limit(Limiter(["5/10s", "50/hour"], backend=backend, name="search"))
    async def search(request: web.Request) -> web.Response:
        return web.json_response({"query": request.query.get("q", ""), "results": []})

    app.add_routes(routes)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a Valkey URL (default: in-memory)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(create_app(args.url), host="127.0.0.1", port=args.port)
