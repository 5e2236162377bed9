"""`sensorium serve`: the gRPC server, configured by SENSORIUM_* variables."""

from __future__ import annotations

import argparse
from typing import Any

from sensorium import logs
from sensorium.settings import Settings, known_variables


def add_parser(commands: Any) -> None:
    variables = "\n".join(f"  {name}\n      {doc}" for name, doc in known_variables().items())
    serve = commands.add_parser(
        "serve", help="run the gRPC server (configured by SENSORIUM_* variables)",
        description="Run the gRPC server until SIGTERM or Ctrl-C. All configuration comes from "
        "environment variables; unknown SENSORIUM_* variables stop start-up.",
        epilog=f"environment variables:\n{variables}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from sensorium.server import serve

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return await serve(settings)
