"""`sensorium serve` hosting only the test service, for tests that must signal a real process.

The same `serve` as the `sensorium serve` command (signal handlers, drain, exit code); it logs
the same "listening" and "ready" lines, which `testkit.serve(command=...)` reads.
"""

from __future__ import annotations

import asyncio
import sys

import testkit
from sensorium import logs
from sensorium.server import serve
from sensorium.settings import Settings


async def main() -> int:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return await serve(settings, services=[testkit.SlowService()])


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
