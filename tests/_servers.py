"""valkey-server processes for the tests: standalone and a small cluster, on loopback only."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        # Never a skip: a suite that silently skips its server proves nothing.
        raise RuntimeError(
            f"{binary} is not on PATH: the tests need a real Valkey. Install valkey-server and "
            "valkey-tools (see README.md, or run .ci/run which installs them)."
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
    """A free loopback port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(1000):
        port = random.randrange(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free loopback port found")


def cli(port: int, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [require("valkey-cli"), "-h", HOST, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"valkey-cli {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


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
                require("valkey-server"),
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
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"valkey-server on port {self.port} exited: see {self.directory}"
                )
            if cli(self.port, "PING", check=False).strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError(f"valkey-server on port {self.port} did not answer PING")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def standalone() -> Server:
    server = Server(free_port(), tempfile.mkdtemp(prefix="glidelimit-valkey-"))
    server.start()
    return server


def cluster(primaries: int = 3) -> list[Server]:
    servers = []
    try:
        for _ in range(primaries):
            server = Server(
                free_port(),
                tempfile.mkdtemp(prefix="glidelimit-cluster-"),
                (
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
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
            "0",
            "--cluster-yes",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in cli(s.port, "CLUSTER", "INFO") for s in servers):
                return servers
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")
    except BaseException:
        for server in servers:
            server.kill()
        raise
