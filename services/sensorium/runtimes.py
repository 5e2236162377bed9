"""The engines one process runs, behind every front end: `Runtimes` is what the server, the
in-process CLI and the index job start from.

    async with Runtimes(settings, ["pdf", "embedding"]) as runtimes:
        outcomes = await runtimes.of(EmbeddingRuntime).embed_texts(["a red circle"])

It decides, once per process, what every runtime shares: the CPU budget (`device.split_cpus`,
logged at start), the device (`device.resolve_device` for the model libraries of the hosted
services, probed once, off the event loop), and the byte budget for memory admission. Runtimes
are built from the registry (`sensorium.registry.SERVICES`) and imported lazily. Nothing here
imports gRPC or generated protobuf. Front ends reach the runtimes through the one seam
(`sensorium.engines.InProcessEngines`); the server hosts them (`sensorium.hosting`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TypeVar

from sensorium.budget import ByteBudget
from sensorium.contract import Runtime, RuntimeContext
from sensorium.device import CpuBudget, DeviceError, DeviceGate, available_cpus, split_cpus
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.registry import spec
from sensorium.settings import ServiceName, Settings

log = logging.getLogger("sensorium.runtimes")

RuntimeFactory = Callable[[RuntimeContext], Runtime]
R = TypeVar("R")


def fixed_cpu_shares(settings: Settings) -> dict[str, int]:
    """Services whose own settings size their CPU use (see `Settings.cpus`)."""
    fixed: dict[str, int] = {}
    if settings.pdf.workers:
        fixed["pdf"] = settings.pdf.workers
    if settings.document.workers:
        fixed["document"] = settings.document.workers
    if settings.transcription.cpu_threads:
        fixed["transcription"] = settings.transcription.cpu_threads * settings.transcription.workers
    if settings.embedding.cpu_threads:
        fixed["embedding"] = settings.embedding.cpu_threads + settings.embedding.preprocess_threads
    if settings.media.workers:
        fixed["media"] = settings.media.workers
    return fixed


def cpu_split(settings: Settings, services: Iterable[str]) -> CpuBudget:
    """The process's CPUs (`SENSORIUM_CPUS`, else what it may use) split among `services` by
    `split_cpus`' rule, honouring the settings that size a service."""
    return split_cpus(settings.cpus or available_cpus(), services, fixed_cpu_shares(settings))


class Runtimes:
    """The runtimes of `services` (default: the settings' SENSORIUM_SERVICES), not yet started.

    `factories` replaces a service's runtime factory (tests hand the PDF runtime a fault-
    injecting page extractor, or a model runtime an injected loader). `cpu` replaces the CPU
    split of the settings (the index job gives the embedding model more on the CPU:
    `sensorium.index.job.local_runtimes`).
    """

    def __init__(
        self,
        settings: Settings,
        services: Iterable[ServiceName] | None = None,
        *,
        budget: ByteBudget | None = None,
        factories: Mapping[ServiceName, RuntimeFactory] | None = None,
        device: DeviceGate | None = None,
        cpu: CpuBudget | None = None,
    ) -> None:
        self.settings = settings
        self.names: list[ServiceName] = list(dict.fromkeys(
            services if services is not None else settings.services))
        self.cpu = cpu or cpu_split(settings, self.names)
        log.info("cpu budget", extra={"split": self.cpu.describe()})
        # Per-client shares apply only where a front end names the client (the server's
        # interceptor sets `limits.CURRENT_CLIENT`); in-process callers are one client.
        self.budget = budget or ByteBudget(
            settings.max_upload_bytes_in_flight, settings.limits.max_upload_bytes_per_client
        )
        # One forkserver per process: it must preload every hosted service's worker modules
        # before the first pool starts it (`sensorium.workers.add_preload`).
        worker_modules = [module for name in self.names for module in spec(name).worker_modules]
        if worker_modules:
            from sensorium.workers import add_preload  # pebble: only where a service has workers

            add_preload(worker_modules)
        libraries = [library for name in self.names for library in spec(name).libraries]
        self.device = device or DeviceGate(settings.device, libraries)
        factories = factories or {}
        self._runtimes: dict[ServiceName, Runtime] = {}
        for name in self.names:
            context = RuntimeContext(settings, self.cpu.shares[name], self.budget, self.device,
                                     self._runtimes)
            factory = factories.get(name, spec(name).create_runtime)
            self._runtimes[name] = factory(context)

    def get(self, name: ServiceName) -> Runtime:
        try:
            return self._runtimes[name]
        except KeyError:
            hosted = ", ".join(self.names) or "none"
            raise SensoriumError(
                Reason.NOT_HOSTED, f"the {name} service is not running here (running: {hosted})"
            ) from None

    def of(self, kind: type[R]) -> R:
        """The runtime of class `kind` (e.g. `runtimes.of(PdfRuntime)`); NOT_HOSTED if none."""
        for runtime in self._runtimes.values():
            if isinstance(runtime, kind):
                return runtime
        hosted = ", ".join(self.names) or "none"
        raise SensoriumError(Reason.NOT_HOSTED, f"no {kind.__name__} runs here (running: {hosted})")

    async def start(self, name: ServiceName) -> None:
        """Start one runtime; raises `ServiceStartError` saying what to fix."""
        try:
            await self.get(name).start()
        except DeviceError as exc:
            raise ServiceStartError(str(exc)) from None

    async def start_all(self) -> None:
        """Start every runtime; on a failure, close what started and raise one
        `ServiceStartError` naming each service that could not start."""
        failures = []
        for name in self.names:
            try:
                await self.start(name)
            except ServiceStartError as exc:
                failures.append(f"{name}: {exc}")
        if failures:
            await self.close(grace=0)
            raise ServiceStartError("; ".join(failures))

    async def close(self, grace: float | None = None) -> None:
        """Close every runtime (each finishes or fails its work within `grace` seconds)."""
        for name in self.names:
            try:
                await self._runtimes[name].close(grace)
            except Exception:
                log.exception("closing a runtime failed", extra={"service": name})

    async def __aenter__(self) -> Runtimes:
        await self.start_all()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(grace=self.settings.shutdown_grace_seconds)
