"""Every check is a nox session: tests, lint, typecheck, types, docs, matrix, redis, bench
(`nox -s NAME`)."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

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


#: The Pythons the package supports: the matrix sessions run the suite on each.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
ROOT = Path(__file__).resolve().parent


def _find_pythons() -> None:
    """Put each supported Python that pyenv installed on PATH, ahead of pyenv's shims: those
    answer only for the versions pyenv has selected, and nox looks for ``python3.X`` on PATH."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = []
    for version in PYTHONS:
        installed = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))
        if installed:
            found.append(installed[-1])
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_find_pythons()


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, against valkey-server processes it starts (standalone + cluster)."""
    session.install("-e", ".[all]", *TEST_DEPS)
    session.run("pytest", *session.posargs)


def _run_installed(session: nox.Session, env: dict[str, str]) -> None:
    """Build the wheel, install it with every extra, and run the suite against it: what a user
    installs, not the source tree."""
    dist = Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(ROOT), silent=True)
    (wheel,) = dist.glob("glidelimit-*.whl")
    session.install(f"glidelimit[all] @ {wheel.as_uri()}", *TEST_DEPS)
    # The tests' own helpers (tests/_servers.py) are importable, the source tree is not: with
    # --import-mode=importlib pytest adds nothing to sys.path, and the pytest script's
    # sys.path[0] is its own folder, not the working directory.
    env = {**env, "PYTHONPATH": str(ROOT / "tests"), "PYTHONSAFEPATH": "1"}
    where = session.run(
        "python", "-c", "import glidelimit; print(glidelimit.__file__)", env=env, silent=True
    )
    if not isinstance(where, str) or "site-packages" not in where:
        session.error(f"glidelimit would be imported from {where!r}, not the installed wheel")
    session.run(
        "pytest", "--import-mode=importlib", "-p", "no:cacheprovider", *session.posargs, env=env
    )


@nox.session(python=PYTHONS)
def matrix(session: nox.Session) -> None:
    """The test suite on one Python (``nox -s matrix-3.12``), against the built wheel."""
    _run_installed(session, {})


@nox.session(python=PYTHONS[-1])
def redis(session: nox.Session) -> None:
    """The test suite against Redis OSS (redis-server and redis-cli on PATH; Debian's
    redis-server package is 7.0) instead of Valkey, on the built wheel."""
    _run_installed(session, {"GLIDELIMIT_TEST_SERVER": "redis"})


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


@nox.session
def types(session: nox.Session) -> None:
    """The public API's type completeness (``pyright --verifytypes``, on the installed
    package), and the documented ways of calling it under ``pyright --strict``."""
    session.install(".[all]", "pyright", *TEST_DEPS)
    # from a folder where the source tree is not importable: pyright reads the installed copy
    session.chdir(session.create_tmp())
    session.run("pyright", "--verifytypes", "glidelimit", "--ignoreexternal")
    session.run("pyright", str(ROOT / "tests" / "strict_typing.py"))


BENCH_PEERS = [
    "limits[async-valkey]",  # limits' async storage on the `valkey` client
    "throttled-py",  # its [redis] extra pins redis<8; it works with the redis below
    "pyrate-limiter",
    "aiolimiter",
    "redis",
    "slowapi",
    "fastapi-limiter",
    "matplotlib",
    "opentelemetry-sdk",  # the suite's metrics-on case reads into the SDK's in-memory reader
]


@nox.session
def bench(session: nox.Session) -> None:
    """Decisions/s and latency against the peers, where a decision's CPU goes, a fleet of
    processes on one cluster, leases on a hot key, then HTTP requests/s (benchmarks/).

    `nox -s bench -- --quick` for a one-minute run of the suite. Writes
    benchmarks/results/results.md, chart.png and fleet.md. The HTTP part needs wrk on PATH
    (Debian: apt-get install wrk).
    """
    session.install("-e", ".[all]", *BENCH_PEERS)
    session.run("python", "benchmarks/suite.py", *session.posargs)
    session.run("python", "benchmarks/cpu.py")
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run("python", "benchmarks/fleet.py", *quick)
    session.run("python", "benchmarks/leases.py", *(["--rounds", "1"] if quick else []))
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
