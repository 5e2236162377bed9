"""Fixtures shared by every test: clean environment and in-process servers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

import testkit
from sensorium.hosting import HostedService
from sensorium.runtimes import Runtimes
from sensorium.server import Server


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SENSORIUM_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("SENSORIUM_"):
            monkeypatch.delenv(name)


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """`await start_server(hosted=[...], **settings)` -> a running Server on 127.0.0.1:0.
    Without `hosted`, the server runs the runtimes of the services named by the `services`
    setting; `factories` replaces some of their runtime factories (see `Runtimes`)."""
    servers: list[Server] = []

    async def start(
        hosted: Sequence[HostedService] | None = None, factories: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Server:
        settings = testkit.test_settings(**overrides)
        runtimes = None if hosted is not None else Runtimes(settings, factories=factories)
        server = Server(settings, services=hosted, runtimes=runtimes)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        if not server._stopped.is_set():
            await server._stop_everything(grace=0)


# Skips: with STRICT_SKIPS=1 (scripts/test and CI), a skipped test fails the run unless its
# reason says it is allowed here, e.g. "[allowed] needs a CUDA GPU". A silently skipped
# suite proves nothing.
ALLOWED_SKIP = "[allowed]"
_unexpected_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        if ALLOWED_SKIP not in reason:
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("STRICT_SKIPS") == "1" and _unexpected_skips and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("STRICT_SKIPS") == "1" and _unexpected_skips:
        terminalreporter.section("unexpected skips (STRICT_SKIPS=1 fails the run)")
        for line in _unexpected_skips:
            terminalreporter.write_line(line)
