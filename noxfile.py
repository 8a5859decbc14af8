"""Every check is a nox session: tests, lint, typecheck, bench (`nox -s NAME`)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True

TEST_DEPS = [
    "pytest>=8.2",
    "pytest-asyncio>=0.24",
    "hypothesis>=6.100",
    "trio>=0.25",
    "websockets>=13",  # a real WebSocket client, and uvicorn's WebSocket server
    "playwright>=1.45",  # drives the system's chromium for the demo page's tests
    "opentelemetry-sdk>=1.20",  # reads the metrics back in tests
    "opentelemetry-exporter-prometheus>=0.41b0",  # the Prometheus example
]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, against valkey-server processes it starts (standalone + cluster)."""
    session.install("-e", ".[all]", *TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src and tests."""
    session.install("-e", ".[all]", "mypy", "nox", *TEST_DEPS)
    session.run("mypy", "src", "tests", "noxfile.py")


BENCH_PEERS = [
    "limits[async-valkey]",  # limits' async storage on the `valkey` client
    "throttled-py",  # its [redis] extra pins redis<8; it works with the redis below
    "pyrate-limiter",
    "aiolimiter",
    "redis",
    "slowapi",
    "fastapi-limiter",
    "matplotlib",
]


@nox.session
def bench(session: nox.Session) -> None:
    """Decisions/s and latency against the peers, where a decision's CPU goes, then HTTP
    requests/s (benchmarks/).

    `nox -s bench -- --quick` for a one-minute run of the suite. Writes
    benchmarks/results/results.md and chart.png. The HTTP part needs wrk on PATH (Debian:
    apt-get install wrk).
    """
    session.install("-e", ".[all]", *BENCH_PEERS)
    session.run("python", "benchmarks/suite.py", *session.posargs)
    session.run("python", "benchmarks/cpu.py")
    session.run("python", "benchmarks/http_bench.py")


DOCS_DEPS = [
    "mkdocs>=1.6",
    "mkdocs-material>=9.5",
    "mkdocstrings[python]>=0.29",
    "mkdocstrings-python>=1.16",  # filters: public (what __all__ names)
    "ruff",  # formats the signatures in the API reference
]


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (docs/, mkdocs.yml), built into site/ in strict mode: a broken
    link or API reference fails the build.

    The API reference is read from the source by static analysis, so the package itself need
    not be installed. `nox -s docs -- serve` previews it instead, reloading on every change.
    """
    session.install(*DOCS_DEPS)
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def plots(session: nox.Session) -> None:
    """The algorithm plots of the docs (docs/images/), from the public API and a manual clock."""
    session.install("-e", ".", "matplotlib>=3.7")
    session.run("python", "docs/scripts/algorithm_plots.py", *session.posargs)
