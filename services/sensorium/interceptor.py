"""The one place every data-plane call passes through: readiness, errors, metrics and logs.

Servicers raise `SensoriumError`; this interceptor turns it into the rich status. Any other
exception is logged with its stack and answered INTERNAL with a request id: grpc.aio would
otherwise answer UNKNOWN with the exception's text (server paths included). Health and
reflection calls are passed through untouched so probes never wait behind this work.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc

from sensorium import auth, errors, limits, metrics, status, tracing
from sensorium.errors import Reason, SensoriumError
from sensorium.hosting import HostedService, not_hosted

log = logging.getLogger("sensorium.rpc")

HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection."
PASS_THROUGH = (HEALTH, REFLECTION)
OTHER_METHOD = "other"  # metrics label for methods no service defines (bounded cardinality)


@dataclass
class CallState:
    """Server-wide state the interceptor consults on every call."""

    services: dict[str, HostedService] = field(default_factory=dict)
    """Hosted services by gRPC service name."""
    known_methods: set[str] = field(default_factory=set)
    """Full method paths of hosted services; others share one metrics label."""
    draining: bool = False
    """Set once shutdown stops taking new work."""
    tokens: auth.TokenFile | None = None
    """Accepted bearer tokens; None = no authentication."""
    protect_reflection: bool = True
    """With tokens: reflection needs a valid token too."""
    client_certificates: bool = False
    """Mutual TLS is on: a client without a token is named by its certificate's subject."""
    calls_per_client: limits.CallLimiter = field(default_factory=lambda: limits.CallLimiter(0))
    """Calls in flight per client."""
    in_flight: int = 0
    """Data-plane calls being served (refusals included, until they are answered)."""
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while `in_flight` is 0: shutdown waits for it before it closes the listener."""

    def __post_init__(self) -> None:
        self.idle.set()


class _Call:
    """Bookkeeping for one call: id, timing, sizes, final code, and the one log line."""

    def __init__(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], known_methods: set[str]
    ) -> None:
        self.method = method
        self.label = method if method in known_methods else OTHER_METHOD
        self.context = context
        # Read now: grpcio segfaults on `peer()` once a call has been cancelled.
        self.peer = context.peer()
        incoming = dict(context.invocation_metadata() or ())
        # Holds the caller's token (`authorization`): never log it.
        self.metadata: dict[str, Any] = incoming
        self.request_id = str(incoming.get("x-request-id") or uuid.uuid4().hex[:16])
        self.client = ""
        """Who the call comes from (`auth.client_identity`), once `_authorize` ran."""
        self.counted = False
        """Holds one of its client's call slots (`CallState.calls_per_client`)."""
        self.span: Any = None
        """The call's trace span while tracing is on, and what makes it current."""
        self.span_token: Any = None
        self.code = grpc.StatusCode.OK
        self.reason = ""
        self.received = 0
        self.sent = 0
        self.started = time.perf_counter()
        metrics.IN_FLIGHT.labels(self.label).inc()

    async def fail(self, error: SensoriumError) -> None:
        self.code, self.reason = status.code_of(error), error.reason.name
        await self.context.abort_with_status(status.to_status(error, self.request_id))

    async def crash(self, exc: BaseException) -> None:
        log.error(
            "unexpected error", exc_info=exc,
            extra={"method": self.method, "request_id": self.request_id},
        )
        await self.fail(errors.internal_error(self.request_id))

    def finish(self) -> None:
        seconds = time.perf_counter() - self.started
        code = self.code.name
        metrics.IN_FLIGHT.labels(self.label).dec()
        metrics.REQUESTS.labels(self.label, code).inc()
        metrics.REQUEST_SECONDS.labels(self.label).observe(seconds)
        metrics.RECEIVED_BYTES.labels(self.label).inc(self.received)
        metrics.SENT_BYTES.labels(self.label).inc(self.sent)
        fields = {
            "method": self.method, "code": code, "duration_ms": round(seconds * 1000, 2),
            "request_bytes": self.received, "response_bytes": self.sent,
            "request_id": self.request_id, "peer": self.peer,
        }
        if self.client:
            fields["client"] = self.client
        if self.reason:
            fields["reason"] = self.reason
        level = logging.ERROR if code in ("INTERNAL", "UNKNOWN", "DATA_LOSS") else logging.INFO
        log.log(level, "rpc", extra=fields)


# Generic only in the type stubs; a string so nothing subscripts it at run time.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every data-plane method handler (see the module docstring)."""

    def __init__(self, state: CallState) -> None:
        self.state = state

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(HEALTH):
            return handler
        if method.startswith(REFLECTION):
            protect = self.state.tokens is not None and self.state.protect_reflection
            return self._authenticated(method, handler) if protect else handler
        return self._wrap(method, handler)

    def _authorize(self, call: _Call, method: str) -> None:
        """Name the caller (for limits and logs) and check its token: UNAUTHENTICATED without a
        valid one, PERMISSION_DENIED for a service the token may not call. Runs first, so a
        caller without a token learns nothing about what this server hosts."""
        principal = None
        if self.state.tokens is not None:
            principal = self.state.tokens.authenticate(call.metadata)
            service = self.state.services.get(method.split("/")[1])
            if service is not None and not principal.may_call(service.name):
                call.client = principal.label
                raise auth.permission_denied(principal, service.name)
        subject = ""
        if principal is None and self.state.client_certificates:
            subjects = list(call.context.auth_context().get("x509_subject") or ())
            subject = subjects[0].decode(errors="replace") if subjects else ""
        call.client = auth.client_identity(principal, subject, call.peer)
        limits.CURRENT_CLIENT.set(call.client)

    def _limit(self, call: _Call) -> None:
        """Take one of the client's call slots (CLIENT_LIMIT when it has none left)."""
        self.state.calls_per_client.acquire(call.client)
        call.counted = True

    def _end(self, call: _Call) -> None:
        """The call is answered: give back its slots, log it."""
        if call.counted:
            self.state.calls_per_client.release(call.client)
            call.counted = False
        self.state.in_flight -= 1
        if self.state.in_flight == 0:
            self.state.idle.set()
        tracing.leave(call.span_token)
        tracing.end_call(call.span, call.code.name, call.code.value[0], call.reason, call.client)
        call.finish()

    def _authenticated(self, method: str, handler: Handler) -> Handler:
        """Reflection behind the token check (and the call log), with nothing else applied."""
        # Reflection (and the fallback handler) are bidirectional streams, and async ones here.
        assert handler.stream_stream is not None
        behavior: Callable[..., AsyncIterator[Any]] = handler.stream_stream  # type: ignore[assignment]

        async def wrapped(
            requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            call, requests = self._begin(method, context, requests, True)
            try:
                self._authorize(call, method)
                async for response in behavior(requests, context):
                    yield response
            except BaseException as exc:
                await self._handle(call, exc)
            finally:
                self._end(call)

        return grpc.stream_stream_rpc_method_handler(
            wrapped, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _admit(self, method: str, request_id: str) -> None:
        """Refuse work the server cannot do now, before the servicer runs."""
        if self.state.draining:
            raise SensoriumError(
                Reason.SHUTTING_DOWN, "the server is shutting down; retry on another replica",
                retry_after_seconds=1.0,
            )
        service = self.state.services.get(method.split("/")[1])
        if service is None:
            raise not_hosted(method, [s.name for s in self.state.services.values()])
        if not service.ready and service.problem is not None:
            problem = service.problem
            raise SensoriumError(problem.reason, f"{problem.message} (request id {request_id})",
                                 problem.metadata, problem.retry_after_seconds)

    def _wrap(self, method: str, handler: Handler) -> Handler:
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._single_response(method, handler.unary_unary, request_streaming=False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream, request_streaming=False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(method, handler.stream_stream, request_streaming=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        assert handler.stream_unary is not None
        return grpc.stream_unary_rpc_method_handler(
            self._single_response(method, handler.stream_unary, request_streaming=True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _begin(
        self, method: str, context: grpc.aio.ServicerContext[Any, Any], request: Any, streaming: bool
    ) -> tuple[_Call, Any]:
        """The call's record, and the request (a stream is wrapped to count its bytes)."""
        call = _Call(method, context, self.state.known_methods)
        self.state.in_flight += 1
        self.state.idle.clear()
        call.span = tracing.start_call(method, call.request_id, call.metadata)
        call.span_token = tracing.enter(call.span)
        if streaming:
            return call, _counted(request, call)
        call.received = _size(request)
        return call, request

    def _single_response(
        self, method: str, behavior: Callable[..., Any], *, request_streaming: bool
    ) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call, request = self._begin(method, context, request, request_streaming)
            try:
                self._authorize(call, method)
                self._admit(method, call.request_id)
                self._limit(call)
                response = await behavior(request, context)
                call.sent = _size(response)
                return response
            except BaseException as exc:
                await self._handle(call, exc)
            finally:
                self._end(call)

        return wrapped

    def _streaming(
        self, method: str, behavior: Callable[..., Any], *, request_streaming: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            call, request = self._begin(method, context, request, request_streaming)
            try:
                self._authorize(call, method)
                self._admit(method, call.request_id)
                self._limit(call)
                async for response in behavior(request, context):
                    call.sent += _size(response)
                    yield response
            except BaseException as exc:
                await self._handle(call, exc)
            finally:
                self._end(call)

        return wrapped

    @staticmethod
    async def _handle(call: _Call, exc: BaseException) -> None:
        """Answer `exc` with the right status; re-raise what grpc itself must see."""
        if isinstance(exc, SensoriumError):
            await call.fail(exc)
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):  # the client went away
            call.code = grpc.StatusCode.CANCELLED
            raise exc
        elif isinstance(exc, TimeoutError):
            # The Batcher drops work whose deadline passed before the model could run it.
            call.code = grpc.StatusCode.DEADLINE_EXCEEDED
            await call.context.abort(call.code, "the call's deadline passed before it could run")
        elif isinstance(exc, grpc.aio.AbortError):
            # The servicer aborted by itself; its code is already on the context.
            call.code = call.context.code() or grpc.StatusCode.UNKNOWN
            raise exc
        elif isinstance(exc, Exception):
            await call.crash(exc)
        else:
            raise exc


async def _counted(requests: Any, call: _Call) -> AsyncIterator[Any]:
    async for request in requests:
        call.received += _size(request)
        yield request


def _size(message: Any) -> int:
    size: int = message.ByteSize() if hasattr(message, "ByteSize") else len(message or b"")
    return size


def fallback_handler(state: CallState) -> grpc.GenericRpcHandler:
    """Answers methods no registered servicer handles. The interceptor refuses methods of
    services not hosted here; this catches unknown methods of hosted ones."""

    class Fallback(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> Handler:
            method: str = details.method

            async def refuse(requests: Any, context: Any) -> AsyncIterator[Any]:
                # Aborts by itself: pass-through methods (e.g. reflection when it is off)
                # reach this handler without the interceptor's error mapping.
                error = not_hosted(method, [s.name for s in state.services.values()])
                await context.abort_with_status(status.to_status(error, uuid.uuid4().hex[:16]))
                yield  # pragma: no cover - an async generator, as stream handlers must be

            # A stream-stream handler accepts unary and streaming callers alike.
            return grpc.stream_stream_rpc_method_handler(refuse)

    return Fallback()
