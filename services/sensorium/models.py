"""`sensorium models`: make the weights every hosted service needs available offline.

Pods never download at start-up; this command runs where a hub is reachable (or where the
packaged weights are installed) and fills the model directory that images bake or mount.
Each service that needs weights names its `prepare_models` in the registry
(`sensorium.registry.SERVICES`): it returns what it prepared or raises `ModelError` saying what
to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from sensorium.errors import ModelError
from sensorium.exits import Exit
from sensorium.registry import SERVICES
from sensorium.settings import ServiceName, Settings

log = logging.getLogger(__name__)


def prepare_models(settings: Settings, model_dir: Path, services: Iterable[ServiceName]) -> int:
    """Prepare the models of `services` in `model_dir`; the exit code (0 if all are ready)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for service in services:
        prepare = SERVICES[service].prepare_models
        if prepare is None:
            print(f"{service}: needs no model weights")
            continue
        try:
            print(f"{service}: {prepare(settings, model_dir)}")
        except ModelError as exc:
            failed += 1
            print(f"{service}: cannot prepare: {exc}")
    return Exit.FAILED if failed else Exit.OK
