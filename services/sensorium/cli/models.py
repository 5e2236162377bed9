"""`sensorium models`: prepare model directories where a model hub is reachable."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from sensorium import logs
from sensorium.cli.common import CliError
from sensorium.exits import Exit
from sensorium.registry import SERVICES
from sensorium.settings import Settings


def add_parser(commands: Any) -> None:
    models = commands.add_parser(
        "models", help="prepare model directories (run where a model hub is reachable)",
        description="Download or assemble the models the settings name into SENSORIUM_MODEL_DIR "
        "so that servers start without network access.",
    )
    models.add_argument("--dir", type=Path, default=None,
                        help="model directory (default: SENSORIUM_MODEL_DIR)")
    models.add_argument("services", nargs="*", default=[], metavar="SERVICE",
                        help=f"services whose models to prepare: {', '.join(SERVICES)} (default: "
                        "those in SENSORIUM_SERVICES)")
    models.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from sensorium.models import prepare_models

    settings = Settings()
    logs.configure("INFO", settings.log_format)
    model_dir = args.dir or settings.model_dir
    services: list[str] = args.services or list(settings.services)
    unknown = set(services) - set(SERVICES)
    if unknown:
        raise CliError(f"unknown service(s) {', '.join(sorted(unknown))}; known: "
                       f"{', '.join(SERVICES)}", Exit.USAGE)
    names = [name for name in SERVICES if name in services]
    return await asyncio.to_thread(prepare_models, settings, model_dir, names)
