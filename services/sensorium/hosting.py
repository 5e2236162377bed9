"""How the gRPC server hosts a service: the adapter between a runtime and the server.

A `HostedService` registers its servicer, starts its engine and stops it; the server tracks
whether it is ready. `RuntimeService` is the adapter for every registered service: its
servicer comes from the registry, its engine is a runtime of the process's `Runtimes`. Tests
host services of their own by subclassing `HostedService`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from sensorium.errors import Reason, SensoriumError
from sensorium.registry import ServiceSpec, by_grpc_name
from sensorium.runtimes import Runtimes


class HostedService(abc.ABC):
    """One gRPC service and the engine behind it."""

    name: str
    """Short name, as in SENSORIUM_SERVICES (test services use their own)."""
    full_name: str
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

    async def stop(self, grace: float | None = None) -> None:  # noqa: B027 - optional hook
        """Release the engine (worker processes, model memory) after in-flight calls ended."""

    def watch(self, listener: Callable[[bool, SensoriumError | None], None]) -> None:  # noqa: B027
        """After start: call `listener(ready, problem)` when the engine stops or starts being
        able to serve (a model process died and is restarted). Optional."""


class RuntimeService(HostedService):
    """A registered service: the registry's servicer over a runtime of `runtimes`."""

    def __init__(self, spec: ServiceSpec, runtimes: Runtimes) -> None:
        self.name, self.full_name = spec.name, spec.grpc_name
        self.spec = spec
        self.runtimes = runtimes
        super().__init__()

    def register(self, server: grpc.aio.Server) -> None:
        self.spec.add_servicer(server, self.runtimes.get(self.spec.name))

    async def start(self) -> None:
        await self.runtimes.start(self.spec.name)

    async def stop(self, grace: float | None = None) -> None:
        await self.runtimes.get(self.spec.name).close(grace)

    def watch(self, listener: Callable[[bool, SensoriumError | None], None]) -> None:
        watch = getattr(self.runtimes.get(self.spec.name), "watch", None)
        if watch is not None:
            watch(listener)


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


def deadline_of(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    """The call's deadline on the `time.monotonic()` scale runtimes and the Batcher use."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def not_hosted(method: str, hosted: list[str]) -> SensoriumError:
    """The answer to a call of a method this process does not serve."""
    spec = by_grpc_name(method.rsplit("/", 1)[0].lstrip("/"))
    serving = ", ".join(hosted) or "nothing"
    if spec is not None:
        text = (
            f"this server does not host the {spec.name} service (it hosts: {serving}); "
            f"add `{spec.name}` to SENSORIUM_SERVICES or call a server that hosts it"
        )
    else:
        text = f"unknown method {method}; this server hosts: {serving}"
    return SensoriumError(Reason.NOT_HOSTED, text, {"method": method})

