"""A server hosting only the test service, for tests that must signal a real process.

Prints `PORT <main> <health>` on stdout once serving; settings come from SENSORIUM_* as usual.
"""

from __future__ import annotations

import asyncio
import sys

import testkit
from sensorium import logs
from sensorium.server import Server
from sensorium.settings import Settings


async def main() -> int:
    settings = Settings()
    logs.configure("INFO", settings.log_format)
    server = Server(settings, services=[testkit.SlowService()])
    server.install_signal_handlers()
    await server.start()
    print(f"PORT {server.port} {server.health_port}", flush=True)
    await server.wait_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
