from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from _servers import Deployment, Server, cluster, standalone
from glidelimit import MemoryBackend, ValkeyBackend
from glidelimit.backends import Backend

BACKENDS = ["memory", "valkey", "cluster"]


@pytest.fixture(scope="session")
def valkey() -> Iterator[Server]:
    server = standalone()
    yield server
    server.kill()


@pytest.fixture
def own_valkey() -> Iterator[Server]:
    """A server of the test's own, for a test that pauses it (a pause outlives the test)."""
    server = standalone()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[list[Server]]:
    servers = cluster()
    yield servers
    for server in servers:
        server.kill()


@pytest.fixture(scope="session")
def valkey_url(valkey: Server) -> str:
    return valkey.url


@pytest.fixture(scope="session")
def cluster_url(valkey_cluster: list[Server]) -> str:
    return valkey_cluster[0].url + "?cluster=true"


@pytest.fixture(params=["valkey", "cluster"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """A standalone server, then a cluster."""
    if request.param == "valkey":
        server: Server = request.getfixturevalue("valkey")
        return Deployment([server], server.url)
    servers: list[Server] = request.getfixturevalue("valkey_cluster")
    return Deployment(servers, request.getfixturevalue("cluster_url"))


@pytest.fixture
def name() -> str:
    """A limiter name no other test uses, so tests never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each behaviour test runs on memory, on a standalone Valkey and on a Valkey cluster."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    url = request.getfixturevalue("valkey_url" if request.param == "valkey" else "cluster_url")
    valkey_backend = ValkeyBackend.from_url(url)
    await valkey_backend.connect()  # so that timing tests do not time the connection
    yield valkey_backend
    await valkey_backend.aclose()


@pytest.fixture
async def valkey_backend(valkey_url: str) -> AsyncIterator[ValkeyBackend]:
    backend = ValkeyBackend.from_url(valkey_url)
    yield backend
    await backend.aclose()


@pytest.fixture
async def cluster_backend(cluster_url: str) -> AsyncIterator[ValkeyBackend]:
    backend = ValkeyBackend.from_url(cluster_url)
    yield backend
    await backend.aclose()


@pytest.fixture(params=["memory", "valkey"])
async def http_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The HTTP integration tests run on memory and on a standalone Valkey."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    async with ValkeyBackend.from_url(request.getfixturevalue("valkey_url")) as backend:
        await backend.connect()
        yield backend


@pytest.fixture(params=["valkey", "cluster"])
async def deployment_backend(request: pytest.FixtureRequest) -> AsyncIterator[ValkeyBackend]:
    """A connected ValkeyBackend on a standalone server, then on a cluster."""
    url = request.getfixturevalue("valkey_url" if request.param == "valkey" else "cluster_url")
    async with ValkeyBackend.from_url(url) as backend:
        await backend.connect()
        yield backend


@pytest.fixture
def own_cluster() -> Iterator[list[Server]]:
    """A 3-primary cluster of a test's own, to disturb (stop, migrate, kill)."""
    servers = cluster()
    yield servers
    for server in servers:
        server.kill()


@pytest.fixture
def replicated_cluster() -> Iterator[list[Server]]:
    """3 primaries with a replica each (node timeout 1.5 s), of a test's own: for failovers."""
    servers = cluster(primaries=3, replicas=1, node_timeout_ms=1500)
    yield servers
    for server in servers:
        server.kill()
