"""What a service hosted by the server looks like, and which services exist.

Each service package (`sensorium.pdf`, `sensorium.transcription`, `sensorium.embedding`) provides
a `HostedService`: it registers its servicer, loads and warms its engine in `start()`, and
releases it in `stop()`. Service modules are imported lazily, so a PDF-only install never
imports torch.
"""

from __future__ import annotations

import abc
import importlib
from typing import ClassVar

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from sensorium.errors import Reason, SensoriumError
from sensorium.settings import ServiceName, Settings
from sensorium.uploads import ByteBudget

# Every service Sensorium defines, by settings name: (gRPC service name, module with `create`).
SERVICES: dict[ServiceName, tuple[str, str]] = {
    "pdf": ("sensorium.pdf.v1.PdfService", "sensorium.pdf.servicer"),
    "transcription": (
        "sensorium.transcription.v1.TranscriptionService", "sensorium.transcription.servicer",
    ),
    "embedding": ("sensorium.embedding.v1.EmbeddingService", "sensorium.embedding.servicer"),
}


class HostedService(abc.ABC):
    """One gRPC service and the engine behind it."""

    name: ClassVar[str]
    """Short name, as in SENSORIUM_SERVICES (test services use their own)."""
    full_name: ClassVar[str]
    """gRPC service name, e.g. "sensorium.pdf.v1.PdfService" (health and reflection use it)."""

    def __init__(self) -> None:
        self.ready = False
        self.problem: SensoriumError | None = SensoriumError(
            Reason.NOT_READY, f"the {self.name} service is starting; retry shortly",
            retry_after_seconds=5.0,
        )

    @abc.abstractmethod
    def register(self, server: grpc.aio.Server) -> None:
        """Add the servicer to `server` (before it starts)."""

    def method_paths(self) -> set[str]:
        """Full paths of this service's methods ("/pkg.Service/Method"), from its descriptor."""
        try:
            service = descriptor_pool.Default().FindServiceByName(self.full_name)
        except KeyError:
            return set()
        return {f"/{self.full_name}/{m.name}" for m in service.methods}

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load and warm up the engine; raise `ServiceStartError` with the fix when it cannot."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release the engine (worker processes, model memory) after in-flight calls ended."""


class ServiceStartError(Exception):
    """A service cannot start; the message says why and how to fix it."""


def create_service(name: ServiceName, settings: Settings, budget: ByteBudget) -> HostedService:
    """Build the hosted service `name` from its package's `create(settings, budget)`; all
    services share the server's one upload byte budget."""
    _, module_name = SERVICES[name]
    module = importlib.import_module(module_name)
    service: HostedService = module.create(settings, budget)
    return service


UNARY_RESPONSE_LIMIT = 4 * 1024 * 1024
"""gRPC clients' default receive limit: unary responses stay under it (bulky results stream)."""


def ensure_unary_fits(response: Message, what: str, stream_method: str) -> None:
    """Refuse a unary response most clients could not receive, naming the streaming call."""
    size = response.ByteSize()
    if size > UNARY_RESPONSE_LIMIT:
        raise SensoriumError(
            Reason.INPUT_TOO_LARGE,
            f"the {what} is {size} bytes, more than the 4 MiB most gRPC clients accept in one "
            f"message; use {stream_method}",
            {"size_bytes": str(size), "limit_bytes": str(UNARY_RESPONSE_LIMIT)},
        )


def not_hosted(method: str, hosted: list[str]) -> SensoriumError:
    """The answer to a call of a method this process does not serve."""
    service = method.rsplit("/", 1)[0].lstrip("/")
    names = {full: short for short, (full, _) in SERVICES.items()}
    serving = ", ".join(hosted) or "nothing"
    if service in names:
        text = (
            f"this server does not host the {names[service]} service (it hosts: {serving}); "
            f"add `{names[service]}` to SENSORIUM_SERVICES or call a server that hosts it"
        )
    else:
        text = f"unknown method {method}; this server hosts: {serving}"
    return SensoriumError(Reason.NOT_HOSTED, text, {"method": method})

