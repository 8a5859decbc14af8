"""Check the TLS recipes of docs/deployment/tls.md against a real valkey-server.

    python docs/scripts/verify_tls.py

Makes a throwaway certificate authority, a server certificate and a client certificate with
`openssl` in a temporary directory, starts `valkey-server` with TLS on a free loopback port
(one server that does not ask for client certificates, one that does), and connects to it as
the page says. Prints one line per case and exits non-zero if any case did not turn out as the
page says. Needs valkey-server (built with TLS) and openssl on PATH, and glidelimit installed.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glide import AdvancedGlideClientConfiguration, TlsAdvancedConfiguration

from glidelimit import BackendError, Limiter, ValkeyBackend

HOST = "127.0.0.1"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> None:
    """ca.pem, server.pem/server.key (for 127.0.0.1 and localhost), client.pem/client.key."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=glidelimit test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=directory,
    )
    for name, extension in [
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ]:
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=directory,
        )
        (directory / f"{name}.ext").write_text(extension + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
            cwd=directory,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def tls_server(directory: Path, auth_clients: str) -> Iterator[int]:
    """A valkey-server that speaks only TLS, on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "valkey-server",
            "--bind",
            HOST,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(directory / "server.pem"),
            "--tls-key-file",
            str(directory / "server.key"),
            "--tls-ca-cert-file",
            str(directory / "ca.pem"),
            "--tls-auth-clients",
            auth_clients,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("valkey-server with TLS did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def try_backend(backend: ValkeyBackend) -> str:
    """'ok' if a decision is made on the server, else the error's cause."""
    limiter = Limiter("10/second", backend=backend, name="tls", on_backend_error="raise")
    try:
        async with backend:
            await backend.connect()
            decision = await limiter.hit("check")
            return "ok" if decision.allowed and not decision.degraded else f"odd: {decision}"
    except BackendError as exc:
        return f"refused: {exc.__cause__ or exc}"


async def main() -> int:
    for binary in ("valkey-server", "openssl"):
        if shutil.which(binary) is None:
            print(f"{binary} is not on PATH")
            return 2
    failures = 0

    def report(case: str, outcome: str, expected: str) -> None:
        nonlocal failures
        good = outcome.startswith(expected)
        failures += not good
        print(f"{'PASS' if good else 'FAIL'}  {case}: {outcome.splitlines()[0][:150]}")

    with tempfile.TemporaryDirectory(prefix="glidelimit-tls-") as tmp:
        directory = Path(tmp)
        make_certificates(directory)
        ca = (directory / "ca.pem").read_bytes()
        cert = (directory / "client.pem").read_bytes()
        key = (directory / "client.key").read_bytes()

        with tls_server(directory, "no") as port:
            url = f"valkeys://{HOST}:{port}"
            report(
                "no CA given (system trust store)",
                await try_backend(ValkeyBackend.from_url(url)),
                "refused",
            )
            custom_ca = ValkeyBackend.from_url(
                url,
                advanced_config=AdvancedGlideClientConfiguration(
                    tls_config=TlsAdvancedConfiguration(root_pem_cacerts=ca)
                ),
            )
            report("custom CA (root_pem_cacerts)", await try_backend(custom_ca), "ok")
            insecure = ValkeyBackend.from_url(
                url,
                advanced_config=AdvancedGlideClientConfiguration(
                    tls_config=TlsAdvancedConfiguration(use_insecure_tls=True)
                ),
            )
            report("no verification (use_insecure_tls)", await try_backend(insecure), "ok")
            plain = ValkeyBackend.from_url(f"valkey://{HOST}:{port}")
            report("valkey:// (no TLS) on a TLS port", await try_backend(plain), "refused")

        with tls_server(directory, "yes") as port:
            url = f"valkeys://{HOST}:{port}"
            without = ValkeyBackend.from_url(
                url,
                advanced_config=AdvancedGlideClientConfiguration(
                    tls_config=TlsAdvancedConfiguration(root_pem_cacerts=ca)
                ),
            )
            report(
                "server asks for a client certificate, none given",
                await try_backend(without),
                "refused",
            )
            mutual = ValkeyBackend.from_url(
                url,
                advanced_config=AdvancedGlideClientConfiguration(
                    tls_config=TlsAdvancedConfiguration(
                        root_pem_cacerts=ca, client_cert_pem=cert, client_key_pem=key
                    )
                ),
            )
            report("mutual TLS (client_cert_pem, client_key_pem)", await try_backend(mutual), "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
