"""The gRPC server: hosts any subset of the services, health, reflection and metrics.

Start-up: bind the ports with every health entry NOT_SERVING (grpcio reports the overall ""
entry SERVING before anything is set), then start each service (load and warm its model) and
mark it SERVING. Shutdown on SIGTERM: NOT_SERVING first, wait `shutdown_delay_seconds` for load
balancers to notice while still serving, then refuse new work with UNAVAILABLE and let
in-flight calls finish within `shutdown_grace_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sensorium import auth, metrics, tls, tracing, transport
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.exits import Exit
from sensorium.hosting import HostedService, RuntimeService
from sensorium.interceptor import CallState, HealthChecksOnly, ServiceInterceptor, fallback_handler
from sensorium.limits import CallLimiter
from sensorium.registry import SERVICES, spec
from sensorium.runtimes import Runtimes
from sensorium.settings import Settings

log = logging.getLogger(__name__)

OVERALL = ""
LIVENESS = "liveness"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Server:
    """One Sensorium server process: `await start()`, then `await shutdown()` (or `serve()`).

    It hosts the runtimes of `runtimes` (default: those SENSORIUM_SERVICES names), or, for
    tests, the given `services`.
    """

    def __init__(
        self, settings: Settings, services: Sequence[HostedService] | None = None,
        runtimes: Runtimes | None = None,
    ) -> None:
        self.settings = settings
        if services is None:
            runtimes = runtimes or Runtimes(settings)
            services = [RuntimeService(spec(name), runtimes) for name in runtimes.names]
        self.runtimes = runtimes
        hosted = list(services)
        self.state = CallState(
            services={s.full_name: s for s in hosted},
            protect_reflection=settings.auth.protect_reflection,
            client_certificates=settings.tls.client_ca_file is not None,
            calls_per_client=CallLimiter(settings.limits.max_calls_per_client),
            service_packages={
                **{spec.name: spec.grpc_name.rsplit(".", 1)[0] for spec in SERVICES.values()},
                **{s.name: s.full_name.rsplit(".", 1)[0] for s in hosted},
            },
            max_receive_message_bytes=settings.max_receive_message_bytes,
        )
        self.health = health.aio.HealthServicer()
        self.port = 0
        self.health_port = 0
        self.metrics_port: int | None = None
        self._stopped = asyncio.Event()
        self._shutdown: asyncio.Task[None] | None = None
        self._main = self._build_main()
        self._probe = grpc.aio.server(interceptors=[HealthChecksOnly()])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._probe)
        self._metrics: metrics.MetricsEndpoint | None = None
        self.certificates: tls.ReloadingCertificates | None = None
        self._tracing = False

    @property
    def services(self) -> list[HostedService]:
        return list(self.state.services.values())

    def _build_main(self) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[ServiceInterceptor(self.state)],
            options=transport.server_options(self.settings),
            maximum_concurrent_rpcs=self.settings.transport.max_concurrent_calls,
        )
        for service in self.services:
            service.register(server)
            self.state.known_methods |= service.method_paths()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if self.settings.reflection:
            names = [*self.state.services, health.SERVICE_NAME, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, server)
        server.add_generic_rpc_handlers([fallback_handler(self.state)])
        return server

    async def start(self) -> None:
        """Bind and serve, then bring each service up. Raises `ServiceStartError` in
        production when a service cannot start (after stopping what was started)."""
        for name in [OVERALL, *self.state.services]:
            await self.health.set(name, _NOT_SERVING)
        await self.health.set(LIVENESS, _SERVING)
        for service in self.services:
            metrics.SERVICE_READY.labels(service.name).set(0)
        self._load_tokens()
        if self.settings.tracing.enabled:
            tracing.configure(self.settings.tracing)
            self._tracing = True
        self.port = self._bind_main()
        host = self.settings.address.rsplit(":", 1)[0]
        self.health_port = self._probe.add_insecure_port(f"{host}:{self.settings.health_port}")
        if self.settings.metrics_port >= 0:
            self._metrics = metrics.MetricsEndpoint(self.settings.metrics_port)
            self.metrics_port = self._metrics.port
        await self._main.start()
        await self._probe.start()
        log.info(
            "listening", extra={"port": self.port, "health_port": self.health_port,
                                "metrics_port": self.metrics_port,
                                "services": ",".join(s.name for s in self.services),
                                "profile": self.settings.profile},
        )
        failures = await self._start_services()
        if failures and self.settings.profile == "production":
            await self._stop_everything(grace=0)
            raise ServiceStartError("; ".join(failures))
        if any(s.ready for s in self.services) or not self.services:
            await self.health.set(OVERALL, _SERVING)
            log.info("ready", extra={"serving": ",".join(s.name for s in self.services if s.ready)})

    def _bind_main(self) -> int:
        """Bind the API port: TLS when certificate files are set (raises `TlsError` when they
        cannot be served), else plaintext with a warning."""
        if self.settings.tls.enabled:
            self.certificates = tls.ReloadingCertificates(self.settings.tls)
            return self._main.add_secure_port(self.settings.address, self.certificates.credentials())
        log.warning("TLS is off: the gRPC API is plaintext; set SENSORIUM_TLS__CERT_FILE and "
                    "SENSORIUM_TLS__KEY_FILE to encrypt it", extra={"address": self.settings.address})
        return self._main.add_insecure_port(self.settings.address)

    def _load_tokens(self) -> None:
        """Turn on token authentication when a tokens file is set (raises `TokenFileError`
        when it cannot be read or parsed), else warn that every caller is served."""
        path = self.settings.auth.tokens_file
        if path is None:
            log.warning("authentication is off: every caller that reaches the gRPC API is served; "
                        "set SENSORIUM_AUTH__TOKENS_FILE to require bearer tokens")
            return
        known = {*SERVICES, *(s.name for s in self.services)}
        self.state.tokens = auth.TokenFile(path, known)

    async def _start_services(self) -> list[str]:
        failures = []
        for service in self.services:
            try:
                await service.start()
            except ServiceStartError as exc:
                failures.append(f"{service.name}: {exc}")
                log.error("service cannot start", extra={"service": service.name, "why": str(exc)})
                # Why names model directories, paths and library errors: the log's, not a client's.
                service.problem = SensoriumError(
                    Reason.NOT_READY, f"the {service.name} service could not start on this server; "
                    "its operator finds why in the server's log"
                )
                continue
            service.ready, service.problem = True, None
            metrics.SERVICE_READY.labels(service.name).set(1)
            await self.health.set(service.full_name, _SERVING)
            log.info("service ready", extra={"service": service.name})
        return failures

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown, sig.name)

    def request_shutdown(self, why: str = "requested") -> None:
        if self._shutdown is None:
            log.info("shutting down", extra={"why": why})
            self._shutdown = asyncio.get_running_loop().create_task(self.shutdown())

    async def shutdown(self) -> None:
        """NOT_SERVING, wait for load balancers, refuse new work while in-flight calls drain,
        stop.

        The listener stays open while calls drain: a client that still reaches this replica
        gets UNAVAILABLE / SHUTTING_DOWN with a RetryInfo (from the interceptor), which tells
        it to retry elsewhere, instead of a refused connection with no reason. grpc's own
        `stop(grace)` would close the listener at once.
        """
        for name in [OVERALL, *self.state.services]:
            await self.health.set(name, _NOT_SERVING)
        for service in self.services:
            metrics.SERVICE_READY.labels(service.name).set(0)
        await asyncio.sleep(self.settings.shutdown_delay_seconds)
        self.state.draining = True
        grace = self.settings.shutdown_grace_seconds
        log.info("draining", extra={"in_flight": self.state.in_flight, "grace_seconds": grace})
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(grace):
                await self.state.idle.wait()
        except TimeoutError:
            log.warning("the grace period is over; cancelling the calls still in flight",
                        extra={"in_flight": self.state.in_flight})
        left = max(grace - (asyncio.get_running_loop().time() - started), 0.0)
        # Calls that arrived since are refusals, answered at once; `left` bounds them.
        await self._stop_everything(grace=left)
        log.info("stopped")

    async def _stop_everything(self, grace: float) -> None:
        await self._main.stop(grace)
        for service in self.services:
            try:
                await service.stop(grace)
            except Exception:
                log.exception("stopping a service failed", extra={"service": service.name})
        await self._probe.stop(0)
        if self._metrics is not None:
            self._metrics.close()
        if self._tracing:
            # Exports the spans still buffered: a blocking call, kept off the event loop.
            await asyncio.to_thread(tracing.shutdown)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def serve(settings: Settings, services: Sequence[HostedService] | None = None) -> int:
    """Run until SIGTERM/SIGINT; the process exit code. `services`: as for `Server`."""
    server = Server(settings, services)
    server.install_signal_handlers()
    try:
        await server.start()
    except RuntimeError as exc:  # grpc's "Failed to bind"
        log.critical("cannot listen on %s (%s); is the port in use? set SENSORIUM_ADDRESS",
                     settings.address, exc)
        return Exit.USAGE
    except tls.TlsError as exc:
        log.critical("cannot serve TLS: %s", exc)
        return Exit.USAGE
    except auth.TokenFileError as exc:
        log.critical("cannot use the tokens file: %s", exc)
        return Exit.USAGE
    except tracing.TracingError as exc:
        log.critical("cannot trace: %s", exc)
        return Exit.USAGE
    except ServiceStartError as exc:
        log.critical(
            "start-up failed: %s. (SENSORIUM_PROFILE=dev starts anyway and reports it)", exc
        )
        return Exit.CONFIG
    await server.wait_stopped()
    return Exit.OK
