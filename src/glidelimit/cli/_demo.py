"""``glidelimit demo [--url URL]``: serves a FastAPI app limited by glidelimit on 127.0.0.1,
fires bursts of real HTTP requests at it and prints what came back, on the embedded in-memory
backend or on Valkey at URL. (``glidelimit demo --web`` is ``glidelimit._demo_web``.)"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from .._limiter import Limiter
from ..backends import Backend, MemoryBackend
from ..backends.valkey._url import redact
from ._common import Failure, connected

#: seconds the demo waits for Valkey to answer when it starts
CONNECT_TIMEOUT = 5.0

if TYPE_CHECKING:
    from fastapi import FastAPI


def demo_app(limiter: Limiter) -> FastAPI:
    """The demo's app: ``GET /items/{item_id}``, limited per client per route."""
    from fastapi import Depends, FastAPI

    from ..fastapi import RateLimit

    app = FastAPI(title="glidelimit demo")

    @app.get("/items/{item_id}", dependencies=[Depends(RateLimit(limiter))])
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def _extra_missing(exc: ImportError) -> Failure:
    return Failure(f"glidelimit demo needs the cli extra: pip install 'glidelimit[cli]' ({exc})")


@asynccontextmanager
async def _backend(url: str | None) -> AsyncIterator[Backend]:
    if url is None:
        yield MemoryBackend()
        return
    async with connected(url, CONNECT_TIMEOUT) as backend:
        yield backend


async def demo(url: str | None, rate: str, burst: int, pause: float) -> None:
    """Serve :func:`demo_app`, fire ``burst`` requests at once, wait ``pause`` s, fire again."""
    try:
        import httpx  # noqa: F401 (_fire's: missing, it is said before anything starts)
        import uvicorn
    except ImportError as exc:
        raise _extra_missing(exc) from None
    async with _backend(url) as backend:
        limiter = Limiter(rate, backend=backend, name="demo")
        with socket.socket() as s:  # a free port on loopback
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(
            demo_app(limiter), host="127.0.0.1", port=port, log_level="warning", proxy_headers=False
        )
        server = uvicorn.Server(config)
        where = "the in-memory backend" if url is None else redact(url)
        print(
            f"serving http://127.0.0.1:{port}/items/{{item_id}} limited to {rate} (gcra) on {where}"
        )
        failed: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            try:
                while not server.started:  # noqa: ASYNC110 (uvicorn offers only this flag)
                    await anyio.sleep(0.01)
                await limiter.reset("ip:127.0.0.1|route:/items/{item_id}")
                await _fire(port, burst, pause)
            except Exception as exc:  # raised once the server has stopped as it should
                failed = exc
            finally:
                server.should_exit = True
        if failed is not None:
            raise failed


async def _fire(port: int, burst: int, pause: float) -> None:
    """Fire two bursts at the demo on ``port``, and print what came back."""
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        start = time.monotonic()
        n = 0
        for round_ in range(2):
            if round_:
                print(f"    ... {pause:g} s later ...")
                await anyio.sleep(pause)
            for i in range(burst):
                n += 1
                r = await client.get(f"/items/{i + 1}")  # one limit, whatever the id
                if n == 1:
                    print(f"RateLimit-Policy: {r.headers.get('RateLimit-Policy')}\n")
                    print(
                        f"{'#':>3} {'t (s)':>6}  {'GET':<10} {'status':<7} "
                        f"{'RateLimit':<22} Retry-After"
                    )
                print(
                    f"{n:>3} {time.monotonic() - start:6.2f}  /items/{i + 1:<3} "
                    f"{r.status_code:<7} {r.headers.get('RateLimit', ''):<22} "
                    f"{r.headers.get('Retry-After', '')}"
                )
        denied = await client.get("/items/0")
        if denied.status_code == 429:
            print(f"\na 429's body ({denied.headers['content-type']}):\n{denied.text}")


async def run(args: argparse.Namespace) -> None:
    """``glidelimit demo``, in the terminal or (``--web``) as a page."""
    if not args.web:
        burst = 7 if args.burst is None else args.burst
        rate = "5/2s" if args.rate is None else args.rate
        await demo(args.url, rate, burst, args.pause)
        return
    try:
        from .._demo_web import serve
    except ImportError as exc:
        raise _extra_missing(exc) from None
    if args.url is not None:
        async with connected(args.url, CONNECT_TIMEOUT):
            pass  # a wrong URL or a server that is down: one line, before anything is served
    await serve(
        args.url,
        port=args.port,
        rate="5/10s" if args.rate is None else args.rate,
        burst=8 if args.burst is None else args.burst,
        slots=args.slots,
        hold=args.hold,
        name=args.name,
        open_browser=not args.no_browser,
    )
