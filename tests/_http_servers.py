"""Real HTTP servers on loopback for the integration tests: uvicorn and aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from aiohttp import web
from starlette.types import ASGIApp

from _servers import HOST, free_port


@asynccontextmanager
async def serve_asgi(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from a 127.0.0.1 peer
    # as the client's address before glidelimit sees it; trusting proxies is keys.client_ip's job
    config = uvicorn.Config(
        app, host=HOST, port=port, log_level="warning", lifespan="off", proxy_headers=False
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers only this flag)
                await anyio.sleep(0.01)
        try:
            yield f"http://{HOST}:{port}"
        finally:
            server.should_exit = True


@asynccontextmanager
async def serve_aiohttp(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` with aiohttp's own server on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()
