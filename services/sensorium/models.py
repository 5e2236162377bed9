"""`sensorium models`: make the weights every hosted service needs available offline.

Pods never download at start-up; this command runs where a hub is reachable (or where the
packaged weights are installed) and fills the model directory that images bake or mount.
Each service package that needs weights provides `prepare(settings, model_dir) -> str`, which
returns what it prepared or raises `ModelError` saying what to do.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from sensorium.settings import Settings

log = logging.getLogger(__name__)


class ModelError(Exception):
    """A model cannot be prepared; the message says why and what to do."""


def prepare_models(settings: Settings, model_dir: Path, services: list[str]) -> int:
    """Prepare the models of `services` in `model_dir`; the exit code (0 if all are ready)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for service in services:
        try:
            module = importlib.import_module(f"sensorium.{service}.models")
        except ModuleNotFoundError:
            print(f"{service}: needs no model weights" if service == "pdf"
                  else f"{service}: not implemented in this build; nothing to prepare")
            continue
        try:
            print(f"{service}: {module.prepare(settings, model_dir)}")
        except ModelError as exc:
            failed += 1
            print(f"{service}: cannot prepare: {exc}")
    return 1 if failed else 0
