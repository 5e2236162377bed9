"""Fixtures shared by every test: clean environment and in-process servers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
import testkit

from sensorium.hosting import HostedService
from sensorium.server import Server


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SENSORIUM_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("SENSORIUM_"):
            monkeypatch.delenv(name)
    yield


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """`await start_server(services=[...], **settings)` -> a running Server on 127.0.0.1:0."""
    servers: list[Server] = []

    async def start(services: Sequence[HostedService] | None = None, **overrides: Any) -> Server:
        server = Server(testkit.test_settings(**overrides), services=services)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        if not server._stopped.is_set():
            await server._stop_everything(grace=0)
