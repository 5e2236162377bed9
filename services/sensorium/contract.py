"""What the process gives every runtime, and what every runtime and engine interface offers.

This is the bottom of the engine stack: the registry (`sensorium.registry`), the runtimes
(`<service>/runtime.py`), the one seam (`sensorium.engines`) and the container of a process's
runtimes (`sensorium.runtimes`) all build on it, and it imports none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from sensorium.budget import ByteBudget
from sensorium.device import DeviceGate
from sensorium.settings import Settings

E = TypeVar("E")


@dataclass(frozen=True)
class RuntimeContext:
    """What a runtime gets from the process: settings, its CPU share, the shared budgets."""

    settings: Settings
    cpus: int
    """CPUs this service sizes itself for (its share of the process's CPUs)."""
    budget: ByteBudget
    """Memory admission shared by every call in the process."""
    device: DeviceGate
    peers: Mapping[str, Runtime] = field(default_factory=dict)
    """The other runtimes of the process by service name (filled as they are built: look a
    peer up when it is used, not in `__init__`). The search service embeds image queries with
    the embedding service's runtime through it."""


class Runtime(Protocol):
    """What the front ends need of every runtime besides its own typed methods."""

    async def start(self) -> None:
        """Load and warm up the engine; raise `ServiceStartError` saying what to fix."""

    async def close(self, grace: float | None = None) -> None:
        """Stop taking work, finish (within `grace` seconds) or fail what is in work, release
        the engine (worker processes, model memory)."""


@dataclass(frozen=True)
class EngineKey(Generic[E]):
    """A typed handle on one service's engine interface, for `Engines.open`.

    Each service declares its key beside its interface in `<service>/api.py`, e.g.
    `PDF: EngineKey[PdfEngine] = EngineKey("pdf")`; `name` is its registry name.
    """

    name: str
