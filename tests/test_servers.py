"""The suite runs on the server it says it runs on (GLIDELIMIT_TEST_SERVER)."""

from __future__ import annotations

from _servers import SERVER, Server, cli


def test_the_server_is_the_one_asked_for(valkey: Server) -> None:
    info = cli(valkey.port, "INFO", "server")
    # Valkey reports valkey_version (and a redis_version for compatibility); Redis only the latter
    assert ("valkey_version:" in info) == (SERVER == "valkey"), info
    assert "redis_version:" in info
