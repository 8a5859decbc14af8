"""The ``glidelimit`` command (extra ``cli``).

``glidelimit demo [--url URL]`` serves a FastAPI app limited by glidelimit on 127.0.0.1, fires
bursts of real HTTP requests at it and prints what came back: on the embedded in-memory
backend, or on Valkey at URL. ``glidelimit demo --web`` serves a page instead, from which
you fire the requests yourself and watch each algorithm decide.
"""

from __future__ import annotations

import argparse
import functools
import socket
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from ._limiter import Limiter
from .backends import Backend, MemoryBackend, ValkeyBackend

if TYPE_CHECKING:
    from fastapi import FastAPI


def demo_app(limiter: Limiter) -> FastAPI:
    """The demo's app: ``GET /items/{item_id}``, limited per client per route."""
    from fastapi import Depends, FastAPI

    from .fastapi import RateLimit

    app = FastAPI(title="glidelimit demo")

    @app.get("/items/{item_id}", dependencies=[Depends(RateLimit(limiter))])
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


async def demo(url: str | None, rate: str, burst: int, pause: float) -> None:
    """Serve :func:`demo_app`, fire ``burst`` requests at once, wait ``pause`` s, fire again."""
    try:
        import httpx
        import uvicorn
    except ImportError as exc:
        sys.exit(f"glidelimit demo needs the cli extra: pip install 'glidelimit[cli]' ({exc})")
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    if isinstance(backend, ValkeyBackend):
        await backend.connect()
    limiter = Limiter(rate, backend=backend, name="demo")
    with socket.socket() as s:  # a free port on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        demo_app(limiter), host="127.0.0.1", port=port, log_level="warning", proxy_headers=False
    )
    server = uvicorn.Server(config)
    where = "the in-memory backend" if url is None else url
    print(f"serving http://127.0.0.1:{port}/items/{{item_id}} limited to {rate} (gcra) on {where}")
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:  # noqa: ASYNC110 (uvicorn offers only this flag)
            await anyio.sleep(0.01)
        await limiter.reset("ip:127.0.0.1|route:/items/{item_id}")
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
        server.should_exit = True
    await backend.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glidelimit`` command."""
    parser = argparse.ArgumentParser(prog="glidelimit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="show limiting happen, on memory or on Valkey")
    run.add_argument("--url", help="a Valkey URL, e.g. valkey://127.0.0.1:6379 (default: memory)")
    run.add_argument(
        "--rate", help="the rate to demonstrate (default 5/2s; with --web 5/10s, per endpoint)"
    )
    run.add_argument(
        "--burst", type=int, help="requests per burst (default 7; with --web the page's, 8)"
    )
    run.add_argument(
        "--pause", type=float, default=1.0, help="seconds between the bursts (default 1)"
    )
    web = run.add_argument_group("the web page (--web)")
    web.add_argument(
        "--web",
        action="store_true",
        help="serve a live page to fire requests from, until Ctrl-C (default: print bursts)",
    )
    web.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    web.add_argument(
        "--no-browser", action="store_true", help="do not open a browser (default: open one)"
    )
    web.add_argument(
        "--slots",
        type=int,
        default=2,
        help="requests in flight per client on the concurrency endpoint (default 2)",
    )
    web.add_argument(
        "--hold",
        type=float,
        default=1.0,
        help="seconds each request holds its slot there (default 1)",
    )
    web.add_argument(
        "--name",
        default="demo",
        help="starts the limiters' names; demos on one Valkey share limits under one name "
        "(default demo)",
    )
    args = parser.parse_args(argv)
    try:
        if args.web:
            try:
                from ._demo_web import serve
            except ImportError as exc:
                sys.exit(
                    f"glidelimit demo needs the cli extra: pip install 'glidelimit[cli]' ({exc})"
                )
            anyio.run(
                functools.partial(
                    serve,
                    args.url,
                    port=args.port,
                    rate="5/10s" if args.rate is None else args.rate,
                    burst=8 if args.burst is None else args.burst,
                    slots=args.slots,
                    hold=args.hold,
                    name=args.name,
                    open_browser=not args.no_browser,
                )
            )
        else:
            burst = 7 if args.burst is None else args.burst
            rate = "5/2s" if args.rate is None else args.rate
            anyio.run(demo, args.url, rate, burst, args.pause)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
