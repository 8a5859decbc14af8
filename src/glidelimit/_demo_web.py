"""The web demo, ``glidelimit demo --web`` (extra ``cli``): a FastAPI app with an endpoint
limited by each algorithm and one capped by a concurrency limit, and a page
(``demo_page.html``, package data) that fires requests at them and shows and plots what comes
back.

Every endpoint is limited per client IP on its route (the integrations' default key), so every
tab of one browser, and every tab of every demo process sharing a Valkey under the same name,
shares one limit.
"""

from __future__ import annotations

import importlib.resources
import socket
import threading
import webbrowser
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import anyio
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from ._concurrency import ConcurrencyLimiter
from ._decision import Decision
from ._errors import ConfigurationError
from ._limiter import Limiter
from ._rate import Rate
from .backends import Backend, MemoryBackend, ValkeyBackend
from .fastapi import ConcurrencyLimit, RateLimit

__all__ = ["ALGORITHMS", "create_app", "page", "serve"]

ALGORITHMS = ("fixed_window", "sliding_window", "sliding_log", "gcra")
HOST = "127.0.0.1"
PAGE = "demo_page.html"
# a slot's lease: long enough that renewals are rare, short enough that the slots of a demo
# killed while holding them are free again soon
LEASE = 10.0
NO_STORE = {"Cache-Control": "no-store"}


def page() -> str:
    """The demo page's HTML, read from the package."""
    return importlib.resources.files("glidelimit").joinpath(PAGE).read_text(encoding="utf-8")


def describe(url: str | None) -> str:
    """Where the limits live, for people to read: the URL without its password."""
    if url is None:
        return "memory (this process)"
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return f"Valkey at {urlunsplit(parts)}"


def create_app(
    backend: Backend,
    *,
    rate: str = "5/10s",
    name: str = "demo",
    slots: int = 2,
    hold: float = 1.0,
    burst: int = 8,
    where: str = "memory (this process)",
) -> FastAPI:
    """The demo's app: the page at ``/``, its settings at ``/api/config``, an endpoint per
    algorithm at ``/api/<algorithm>`` and a concurrency-limited one at ``/api/concurrency``.

    Args:
        backend: Where every limit lives.
        rate: The rate of each algorithm's endpoint.
        name: Starts each limiter's name: demos on one Valkey share limits under one name.
        slots: Requests each client may have in flight on ``/api/concurrency``.
        hold: Seconds ``/api/concurrency`` holds its slot before it answers.
        burst: The page's initial burst size.
        where: Where the limits live, as the page shows it.

    Raises:
        ConfigurationError: For a bad rate, name, slot count or hold.
    """
    parsed = Rate.parse(rate)
    if isinstance(hold, bool) or not isinstance(hold, (int, float)) or not hold >= 0:
        raise ConfigurationError(f"hold must be seconds >= 0, got {hold!r}")
    html = page()
    app = FastAPI(title="glidelimit demo", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(html, headers=NO_STORE)

    settings = {
        "rate": str(parsed),
        "algorithms": list(ALGORITHMS),
        "slots": slots,
        "hold": hold,
        "burst": burst,
        "backend": where,
        "name": name,
    }

    @app.get("/api/config")
    async def config() -> JSONResponse:
        return JSONResponse(settings, headers=NO_STORE)

    for algorithm in ALGORITHMS:
        limiter = Limiter(parsed, algorithm=algorithm, backend=backend, name=f"{name}-{algorithm}")
        app.add_api_route(
            f"/api/{algorithm}",
            _limited(algorithm),
            methods=["GET"],
            dependencies=[Depends(RateLimit(limiter))],
        )

    in_flight = ConcurrencyLimit(
        ConcurrencyLimiter(slots, lease=LEASE, backend=backend, name=f"{name}-concurrency")
    )

    @app.get("/api/concurrency")
    async def concurrency(decision: Decision | None = Depends(in_flight)) -> JSONResponse:
        await anyio.sleep(hold)  # the work that holds the slot
        # a concurrency limit sends no RateLimit headers: the slots free at admission go here
        free = None if decision is None else decision.remaining
        return JSONResponse(
            {"endpoint": "concurrency", "slots": slots, "free": free}, headers=NO_STORE
        )

    return app


def _limited(algorithm: str) -> Callable[[], Awaitable[dict[str, str]]]:
    async def limited() -> dict[str, str]:
        return {"endpoint": algorithm}

    limited.__name__ = f"limited_{algorithm}"
    return limited


def listen(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port`` (0: a free port), so that the URL works from
    the moment it is printed: connections wait in the backlog until the server accepts them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    url: str | None,
    *,
    port: int = 0,
    rate: str = "5/10s",
    burst: int = 8,
    slots: int = 2,
    hold: float = 1.0,
    name: str = "demo",
    open_browser: bool = True,
) -> None:
    """Serve the demo on 127.0.0.1 until Ctrl-C, printing its URL once.

    Args:
        url: A Valkey URL, or None for the in-memory backend.
        port: The port; 0 picks a free one.
        rate, burst, slots, hold, name: As for :func:`create_app`.
        open_browser: Whether to open the page in a browser.
    """
    backend: Backend = MemoryBackend() if url is None else ValkeyBackend.from_url(url)
    try:
        if isinstance(backend, ValkeyBackend):
            await backend.connect()  # a wrong URL fails here, not at the first click
        app = create_app(
            backend,
            rate=rate,
            name=name,
            slots=slots,
            hold=hold,
            burst=burst,
            where=describe(url),
        )
        sock = listen(port)
        address = f"http://{HOST}:{sock.getsockname()[1]}/"
        print(f"glidelimit demo on {describe(url)}: {address}  (Ctrl-C to stop)", flush=True)
        if open_browser:
            # a thread: a console browser would hold the server up until it quits
            threading.Thread(target=webbrowser.open, args=(address,), daemon=True).start()
        # proxy_headers=False: the limits are per socket peer, whatever a client says it is
        config = uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=False)
        with sock:
            await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        await backend.aclose()
