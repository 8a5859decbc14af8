"""Server processes for the tests: standalone and a small cluster, on loopback only.

valkey-server by default; redis-server with GLIDELIMIT_TEST_SERVER=redis.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, BinaryIO

HOST = "127.0.0.1"
# GLIDELIMIT_TEST_SERVER=redis runs the whole suite on Redis OSS (redis-server, redis-cli)
# instead of Valkey: glidelimit supports both, and only a run on each shows it.
SERVER = os.environ.get("GLIDELIMIT_TEST_SERVER", "valkey")
if SERVER not in ("valkey", "redis"):
    raise RuntimeError(f"GLIDELIMIT_TEST_SERVER must be valkey or redis, got {SERVER!r}")
SERVER_BINARY, CLI_BINARY = f"{SERVER}-server", f"{SERVER}-cli"


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        # Never a skip: a suite that silently skips its server proves nothing.
        raise RuntimeError(
            f"{binary} is not on PATH: the tests need a real server. Install valkey-server and "
            "valkey-tools (see CONTRIBUTING.md, or run .ci/run which installs them); with "
            "GLIDELIMIT_TEST_SERVER=redis, redis-server and redis-tools."
        )
    return path


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free as well.

    Both are below the kernel's ephemeral ports (32768 and up, Linux's default): a client that
    reconnects to a stopped server could otherwise be given that very port for its own end
    (a TCP self-connect), and hold it, so that the server cannot start on it again."""
    for _ in range(1000):
        port = random.randrange(10000, 22768)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free loopback port found")


def wait_for_http(url: str, proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Wait until ``url`` answers (any status), or fail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer (exit code {proc.poll()})") from None
            time.sleep(0.1)


def cli(port: int, *args: str | bytes, check: bool = True) -> str:
    done = subprocess.run(
        [require(CLI_BINARY), "-h", HOST, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and done.returncode != 0:
        shown = " ".join(a if isinstance(a, str) else a.decode(errors="replace") for a in args)
        raise RuntimeError(f"{CLI_BINARY} {shown} failed: {done.stdout}{done.stderr}")
    return done.stdout


Reply = str | int | None | list["Reply"]


def command(port: int, *args: str) -> Reply:
    """One command over a plain socket, with no valkey-cli process: forking one from a test
    that runs traffic stalls its event loop for as long as the fork takes."""
    with socket.create_connection((HOST, port), timeout=60) as sock:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            raw = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        sock.sendall(b"".join(parts))
        reply = _read(sock.makefile("rb"))
    if isinstance(reply, _Error):
        raise RuntimeError(f"{' '.join(args)} failed on port {port}: {reply}")
    return reply


class _Error(str):
    pass


def _read(stream: BinaryIO) -> Reply:
    line = stream.readline()[:-2].decode()
    kind, rest = line[:1], line[1:]
    if kind == "+":
        return rest
    if kind == "-":
        return _Error(rest)
    if kind == ":":
        return int(rest)
    if kind == "$":
        if int(rest) < 0:
            return None
        data = stream.read(int(rest) + 2)[:-2].decode()
        return data
    if kind == "*":
        return None if int(rest) < 0 else [_read(stream) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected reply {line!r}")


@dataclass
class Server:
    port: int
    directory: str
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"valkey://{HOST}:{self.port}"

    def start(self) -> None:
        log = open(os.path.join(self.directory, "valkey.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                require(SERVER_BINARY),
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--dir",
                self.directory,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # A session of its own, as a server run as a service has: with the kernel's
            # autogroup scheduling, a server in its client's session would share that
            # session's CPU with the client's threads instead of getting a share of its own.
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{SERVER_BINARY} on port {self.port} exited: see {self.directory}"
                )
            if cli(self.port, "PING", check=False).strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError(f"{SERVER_BINARY} on port {self.port} did not answer PING")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@dataclass
class Deployment:
    """A Valkey deployment under test: its servers, and the URL to reach it."""

    servers: list[Server]
    url: str


def standalone() -> Server:
    server = Server(free_port(), tempfile.mkdtemp(prefix="glidelimit-valkey-"))
    server.start()
    return server


def cluster(primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 3000) -> list[Server]:
    """A cluster of ``primaries`` primaries, each with ``replicas`` replicas (in sync on return)."""
    servers = []
    try:
        for _ in range(primaries * (1 + replicas)):
            server = Server(
                free_port(),
                tempfile.mkdtemp(prefix="glidelimit-cluster-"),
                (
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                ),
            )
            server.start()
            servers.append(server)
        nodes = [f"{HOST}:{s.port}" for s in servers]
        cli(
            servers[0].port,
            "--cluster",
            "create",
            *nodes,
            "--cluster-replicas",
            str(replicas),
            "--cluster-yes",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in cli(s.port, "CLUSTER", "INFO") for s in servers) and all(
                "master_link_status:down" not in cli(s.port, "INFO", "replication") for s in servers
            ):
                return servers
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")
    except BaseException:
        for server in servers:
            server.kill()
        raise


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def keyslot(key: str) -> int:
    """The cluster slot of ``key`` (CRC16 of its hash tag, as Valkey computes it)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return _crc16(raw) % 16384


def primaries(servers: list[Server]) -> dict[int, list[tuple[int, int]]]:
    """Port of each primary that serves slots -> its slot ranges, as a live node sees them."""
    for server in servers:
        if server.proc is None:
            continue
        owners: dict[int, list[tuple[int, int]]] = {}
        for line in str(command(server.port, "CLUSTER", "NODES")).splitlines():
            fields = line.split()
            if "master" not in fields[2].split(",") or "fail" in fields[2]:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for item in fields[8:]:
                if not item.startswith("["):  # "[slot->-id]": a slot being moved
                    low, _, high = item.partition("-")
                    owners.setdefault(port, []).append((int(low), int(high or low)))
        return owners
    raise RuntimeError("no live node")


def owner(servers: list[Server], slot: int) -> Server:
    """The server that serves ``slot`` as a primary."""
    for port, ranges in primaries(servers).items():
        if any(low <= slot <= high for low, high in ranges):
            return next(s for s in servers if s.port == port)
    raise RuntimeError(f"no primary serves slot {slot}")


def node_id(server: Server) -> str:
    return str(command(server.port, "CLUSTER", "MYID"))


def migrate_slot(servers: list[Server], slot: int, target: Server, pause: float) -> None:
    """Move ``slot`` to ``target`` one key at a time, ``pause`` seconds apart, as
    ``valkey-cli --cluster reshard`` does: clients see MOVED, ASK and TRYAGAIN meanwhile."""
    source = owner(servers, slot)
    source_id, target_id = node_id(source), node_id(target)
    command(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
    command(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
    for _ in range(10_000):
        keys = command(source.port, "CLUSTER", "GETKEYSINSLOT", str(slot), "1")
        if not keys:
            break
        assert isinstance(keys, list)
        key = str(keys[0])
        command(source.port, "MIGRATE", HOST, str(target.port), "", "0", "5000", "KEYS", key)
        time.sleep(pause)
    for server in (target, source, *servers):
        role = command(server.port, "ROLE") if server.proc is not None else None
        if isinstance(role, list) and role[0] == "master":
            command(server.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)


def replica_of(servers: list[Server], primary: Server) -> Server:
    """One replica of ``primary``."""
    primary_id = node_id(primary)
    for line in str(command(primary.port, "CLUSTER", "NODES")).splitlines():
        fields = line.split()
        if "slave" in fields[2] and fields[3] == primary_id:
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            return next(s for s in servers if s.port == port)
    raise RuntimeError(f"primary on port {primary.port} has no replica")


def begin_migration(servers: list[Server], slot: int, target: Server) -> Server:
    """Mark ``slot`` as moving from its owner to ``target`` (the target IMPORTING, then the
    owner MIGRATING), as ``valkey-cli --cluster reshard`` does first; returns the owner.

    Until :func:`end_migration`, the owner runs a command whose keys it all holds, answers ASK
    when it holds none of them and TRYAGAIN when it holds some."""
    source = owner(servers, slot)
    command(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", node_id(source))
    command(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", node_id(target))
    return source


def move_keys(source: Server, target: Server, keys: list[bytes]) -> None:
    """MIGRATE ``keys`` (of a slot being moved) from ``source`` to ``target``, one at a time."""
    for key in keys:
        command(
            source.port, "MIGRATE", HOST, str(target.port), "", "0", "5000", "KEYS", key.decode()
        )


def end_migration(servers: list[Server], slot: int, target: Server) -> None:
    """Give ``slot`` to ``target`` on every live primary: the last step of a reshard."""
    target_id = node_id(target)
    for server in (target, *servers):
        role = command(server.port, "ROLE") if server.proc is not None else None
        if isinstance(role, list) and role[0] == "master":
            command(server.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)


def error_count(server: Server, error: str) -> int:
    """How many replies of ``server`` were the error ``error`` (``TRYAGAIN``, say)."""
    for line in str(command(server.port, "INFO", "errorstats")).splitlines():
        if line.startswith(f"errorstat_{error}:count="):
            return int(line.split("=", 1)[1])
    return 0


def replicated(primary: Server, replica: Server) -> bool:
    """Whether ``replica`` has applied everything ``primary`` has written so far."""

    def offset(server: Server, field: str) -> int:
        for line in str(command(server.port, "INFO", "replication")).splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split(":", 1)[1])
        raise RuntimeError(f"no {field} in INFO replication of port {server.port}")

    return offset(replica, "slave_repl_offset") >= offset(primary, "master_repl_offset")
