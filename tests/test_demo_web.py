"""The demo page (``glidelimit demo --web``) in a real browser: chromium, headless, against the
command itself, run as a process, on the in-memory backend and on Valkey."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from _servers import HOST, free_port, wait_for_http
from glidelimit._demo_web import describe

ALGORITHMS = ["fixed_window", "sliding_window", "sliding_log", "gcra"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "demo-page.png"
WAIT = 30_000  # ms for a condition to come true: generous, the machine may be busy
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # no connections of the browser's own: only the page's, to the demo on loopback
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The system's chromium (Debian: apt-get install chromium)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and os.access("/usr/bin/chromium", os.X_OK):
        path = "/usr/bin/chromium"
    if path is None:
        # Never a skip: a suite that silently skips its browser proves nothing about the page.
        raise RuntimeError(
            "chromium is not installed: the demo page's tests need a real browser. Install it "
            "(Debian: apt-get install chromium), or run .ci/run, which does."
        )
    return path


class Demo:
    """One ``glidelimit demo --web`` process on a free loopback port."""

    def __init__(self, *args: str) -> None:
        port = free_port()
        self.url = f"http://{HOST}:{port}/"
        self.stopped: tuple[int, str] | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "glidelimit", "demo", "--web", "--no-browser",
             "--port", str(port), *args],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            wait_for_http(self.url + "api/config", self.proc)
        except BaseException:
            self.stop()
            raise
        assert self.proc.stdout is not None
        #: What it printed first: the URL, printed before the server answers anything.
        self.banner = self.proc.stdout.readline()

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, then the exit code and whatever else it printed."""
        if self.stopped is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                out, _ = self.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, _ = self.proc.communicate(timeout=10)
            self.stopped = self.proc.returncode, out
        return self.stopped


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for the whole module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium(), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def start_demo() -> Iterator[Callable[..., Demo]]:
    """Starts demo processes for one test, and stops them after it."""
    started: list[Demo] = []

    def start(*args: str) -> Demo:
        demo = Demo(*args)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.stop()


@pytest.fixture(scope="module")
def shared_demos(valkey_url: str) -> Iterator[dict[str, Demo]]:
    """One demo on memory and one on Valkey, started when first asked for, for the tests
    that each use an endpoint no other test of the module uses on them."""

    class Demos(dict[str, Demo]):
        def __missing__(self, backend: str) -> Demo:
            args = [] if backend == "memory" else ["--url", valkey_url, "--name", unique()]
            demo = self[backend] = Demo(*args)
            return demo

    demos = Demos()
    yield demos
    for demo in demos.values():
        demo.stop()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[Demo], Page]]:
    """Opens a demo's page in a browser context of its own (a tab of another browser, as far
    as the page can tell), once the page has loaded its settings. Fails the test on any
    error in the page's script."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_(demo: Demo) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(demo.url)
        expect(page.get_by_test_id("burst")).to_be_enabled(timeout=WAIT)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


def unique() -> str:
    """A limiter name no other demo on the shared Valkey uses."""
    return "demo" + uuid.uuid4().hex[:10]


def burst(page: Page, endpoint: str, size: int, spread: float = 0) -> None:
    page.get_by_test_id("algorithm").select_option(endpoint)
    page.get_by_test_id("burst-size").fill(str(size))
    page.get_by_test_id("burst-spread").fill(f"{spread:g}")
    page.get_by_test_id("burst").click()


def fire(page: Page, endpoint: str) -> None:
    page.get_by_test_id("algorithm").select_option(endpoint)
    page.get_by_test_id("fire").click()


def expect_counts(page: Page, allowed: int, denied: int) -> None:
    """The page's counts settle at ``allowed`` and ``denied`` (they only ever grow)."""
    expect(page.get_by_test_id("allowed-count")).to_have_text(str(allowed), timeout=WAIT)
    expect(page.get_by_test_id("denied-count")).to_have_text(str(denied), timeout=WAIT)


def plotted(page: Page, endpoint: str, kind: str) -> int:
    """Requests of ``kind`` (allowed, denied) that the chart's bars for ``endpoint`` stand for."""
    bars = page.get_by_test_id(f"row-{endpoint}").locator(f"rect.{kind}")
    return sum(int(bars.nth(i).get_attribute("data-n") or 0) for i in range(bars.count()))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("backend", ["memory", "valkey"])
def test_a_burst_shows_exact_counts(
    shared_demos: dict[str, Demo], open_page: Callable[[Demo], Page], backend: str, algorithm: str
) -> None:
    """A burst of 8 at once on 5/10s: 5 allowed and 3 denied, in the read-outs, the log and
    the chart, whatever the algorithm."""
    page = open_page(shared_demos[backend])
    burst(page, algorithm, 8)
    expect_counts(page, 5, 3)
    log = page.get_by_test_id("log")
    expect(log.locator("tr[data-status='200']")).to_have_count(5)
    expect(log.locator("tr[data-status='429']")).to_have_count(3)
    row = page.get_by_test_id(f"row-{algorithm}")
    expect(row).to_have_attribute("data-allowed", "5")
    expect(row).to_have_attribute("data-denied", "3")
    assert (plotted(page, algorithm, "allowed"), plotted(page, algorithm, "denied")) == (5, 3)
    # the problem body of a 429, as the server sent it
    problem = page.get_by_test_id("problem")
    expect(problem).to_contain_text("application/problem+json")
    expect(problem).to_contain_text('"title": "Too Many Requests"')
    expect(problem).to_contain_text(re.compile(rf'"policy": "demo\w*-{algorithm}"'))


def test_the_countdown_runs_to_zero_and_the_limit_lets_through_again(
    start_demo: Callable[..., Demo], open_page: Callable[[Demo], Page]
) -> None:
    """gcra on 5/20s refills one request every 4 s: a 429 shows Retry-After as a countdown that
    keeps the buttons off until zero, and then a request is allowed."""
    page = open_page(start_demo("--rate", "5/20s"))
    fire(page, "fixed_window")
    expect(page.get_by_test_id("status")).to_have_text("200 OK", timeout=WAIT)
    # RateLimit-Policy "demo-fixed_window";q=5;w=20 and RateLimit "demo-fixed_window";r=4;t=20
    expect(page.get_by_test_id("remaining")).to_have_text("4")
    expect(page.get_by_test_id("limit")).to_have_text("5")
    expect(page.get_by_test_id("reset")).to_have_text("20")
    expect(page.get_by_test_id("retry-countdown")).to_have_attribute("data-state", "idle")

    burst(page, "gcra", 8)
    expect_counts(page, 5, 3)
    countdown = page.get_by_test_id("retry-countdown")
    expect(countdown).to_have_attribute("data-state", "counting")
    expect(page.get_by_test_id("fire")).to_be_disabled()
    expect(page.get_by_test_id("burst")).to_be_disabled()
    expect(page.get_by_test_id("problem")).to_contain_text(re.compile(r"retry after [1-4] s"))
    expect(countdown).to_have_text("1", timeout=WAIT)  # it counts down, second by second
    expect(countdown).to_have_text("0", timeout=WAIT)
    expect(countdown).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("fire")).to_be_enabled()
    expect(page.get_by_test_id("burst")).to_be_enabled()

    page.get_by_test_id("fire").click()
    expect_counts(page, 6, 3)  # the single request joins the burst's counts
    expect(page.get_by_test_id("status")).to_have_text("200 OK")


def test_two_tabs_on_valkey_share_one_limit(
    valkey_url: str, start_demo: Callable[..., Demo], open_page: Callable[[Demo], Page]
) -> None:
    """Two pages in two browser contexts, each on a demo process of its own, on one Valkey:
    what one spends, the other cannot (two processes on memory would each have their own)."""
    name = unique()
    first = open_page(start_demo("--url", valkey_url, "--name", name))
    second = open_page(start_demo("--url", valkey_url, "--name", name))
    burst(first, "sliding_log", 5)
    expect_counts(first, 5, 0)
    fire(second, "sliding_log")
    expect_counts(second, 0, 1)
    expect(second.get_by_test_id("status")).to_have_text("429 Too Many Requests")
    expect(second.get_by_test_id("remaining")).to_have_text("0")
    expect(second.get_by_test_id("retry-countdown")).to_have_attribute("data-state", "counting")
    expect(second.get_by_test_id("fire")).to_be_disabled()


def test_two_tabs_of_one_process_share_one_limit_on_memory(
    start_demo: Callable[..., Demo], open_page: Callable[[Demo], Page]
) -> None:
    demo = start_demo()
    first, second = open_page(demo), open_page(demo)
    burst(first, "fixed_window", 5)
    expect_counts(first, 5, 0)
    fire(second, "fixed_window")
    expect_counts(second, 0, 1)
    expect(second.get_by_test_id("status")).to_have_text("429 Too Many Requests")


def test_the_concurrency_endpoint_denies_what_finds_no_slot(
    start_demo: Callable[..., Demo], open_page: Callable[[Demo], Page]
) -> None:
    """2 slots, each held 4 s: of 6 requests sent at once (a browser's connections to one
    host), the first 2 take the slots and the other 4 are refused at once."""
    page = open_page(start_demo("--slots", "2", "--hold", "4"))
    burst(page, "concurrency", 6)
    expect_counts(page, 2, 4)
    row = page.get_by_test_id("row-concurrency")
    expect(row).to_have_attribute("data-allowed", "2")
    expect(row).to_have_attribute("data-denied", "4")
    expect(page.get_by_test_id("problem")).to_contain_text("Too many requests in flight")
    expect(page.get_by_test_id("limit")).to_have_text("2")


def test_all_four_algorithms_at_once_and_the_screenshot(
    start_demo: Callable[..., Demo], open_page: Callable[[Demo], Page]
) -> None:
    """40 requests spread over 8 s at each algorithm on 5/2s (twice the rate): each row of the
    chart holds all 40, the first 5 allowed; then the page is saved as the README's image."""
    page = open_page(start_demo("--rate", "5/2s"))
    burst(page, "all", 40, spread=8)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=allowed-count]').textContent)"
        " + Number(document.querySelector('[data-testid=denied-count]').textContent) === 160",
        timeout=WAIT,
    )
    for algorithm in ALGORITHMS:
        row = page.get_by_test_id(f"row-{algorithm}")
        allowed = int(row.get_attribute("data-allowed") or -1)
        denied = int(row.get_attribute("data-denied") or -1)
        assert allowed + denied == 40
        assert allowed >= 5  # the first 5 come within 1 s
        assert denied >= 1
        assert (plotted(page, algorithm, "allowed"), plotted(page, algorithm, "denied")) == (
            allowed,
            denied,
        )
    expect(page.get_by_test_id("problem")).to_contain_text("429 Too Many Requests")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (None, "memory (this process)"),
        ("valkey://127.0.0.1:6379", "Valkey at valkey://127.0.0.1:6379"),
        ("rediss://app:s3cret@cache.internal:6380/2", "Valkey at rediss://app:***@cache.internal:6380/2"),
        ("valkey://:s3cret@[::1]/0?cluster=true", "Valkey at valkey://:***@[::1]/0?cluster=true"),
    ],
)  # fmt: skip
def test_the_page_names_the_backend_without_its_password(url: str | None, shown: str) -> None:
    assert describe(url) == shown


def test_the_command_prints_its_url_once_and_stops_on_ctrl_c(
    start_demo: Callable[..., Demo],
) -> None:
    demo = start_demo()
    assert demo.banner.strip().endswith(f"{demo.url}  (Ctrl-C to stop)")
    assert "memory" in demo.banner
    with urllib.request.urlopen(demo.url, timeout=10) as response:
        html = response.read().decode()
    assert 'data-testid="retry-countdown"' in html
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing from afar
    code, rest = demo.stop()
    assert code == 130
    assert demo.url not in rest
