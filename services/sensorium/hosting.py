"""How the gRPC server hosts a service: the adapter between a runtime and the server.

A `HostedService` registers its servicer, starts its engine and stops it; the server tracks
whether it is ready. `RuntimeService` is the adapter for every registered service: its
servicer comes from the registry, its engine is a runtime of the process's `Runtimes`.
"""

from __future__ import annotations

import abc

import grpc
from google.protobuf import descriptor_pool

from sensorium.errors import Reason, SensoriumError
from sensorium.registry import ServiceSpec, by_grpc_name
from sensorium.runtimes import Runtimes


class HostedService(abc.ABC):
    """One gRPC service and the engine behind it.

    Every registered service is hosted through `RuntimeService`. This base stays an extension
    point of its own because a server must also host services that have no runtime: the tests'
    services that sleep, crash or hold uploads on purpose (tests/support/testkit.py), which
    prove the interceptor, health, draining and the limits without any engine in the way.
    """

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


class RuntimeService(HostedService):
    """A registered service: the registry's servicer over a runtime of `runtimes`. A service
    without a gRPC face still runs (and reports health under its short name)."""

    def __init__(self, spec: ServiceSpec, runtimes: Runtimes) -> None:
        self.name, self.full_name = spec.name, spec.grpc_name or spec.name
        self.spec = spec
        self.runtimes = runtimes
        super().__init__()

    def register(self, server: grpc.aio.Server) -> None:
        if self.spec.add_servicer is not None:
            self.spec.add_servicer(server, self.runtimes.get(self.spec.name))

    async def start(self) -> None:
        await self.runtimes.start(self.spec.name)

    async def stop(self, grace: float | None = None) -> None:
        await self.runtimes.get(self.spec.name).close(grace)


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

