"""The one place every data-plane call passes through: authentication, readiness, limits,
errors, metrics and logs.

No work before authentication: every data-plane method is served as a request stream at the
transport, whatever its proto says, so the checks run on the call's headers before any request
message is read (grpc.aio reads a unary request whole before it calls a unary handler, even one
that would refuse it; `transport` says why that matters). A unary call's message is read only
once the call is admitted, and held to its method's cap (`ServiceSpec.unary_limits`, through
`transport.unary_limit`).

Servicers raise `SensoriumError`; this interceptor turns it into the rich status. Any other
exception is logged with its stack and answered INTERNAL with a request id: grpc.aio would
otherwise answer UNKNOWN with the exception's text (server paths included). Health checks
(`Check`, `Watch`) are passed through untouched so probes never wait behind this work;
reflection and the health `List` need a token while tokens are on, and reflection shows a token
only the services it may call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from sensorium import auth, errors, limits, metrics, status, tracing, transport
from sensorium.errors import Reason, SensoriumError
from sensorium.hosting import HostedService, not_hosted

log = logging.getLogger("sensorium.rpc")

HEALTH = "/grpc.health.v1.Health/"
HEALTH_CHECKS = {HEALTH + "Check", HEALTH + "Watch"}
"""Open to every caller: the health of the name it asks. (`List` names every service.)"""
REFLECTION = "/grpc.reflection."
OTHER_METHOD = "other"  # metrics label for methods no service defines (bounded cardinality)
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
"""A caller's `x-request-id` is used as is only when it matches: it lands in log lines (text and
JSON), traces and error metadata, where spaces, quotes, `=` or newlines could forge fields."""


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
    """With tokens: reflection (and the health List) needs a valid token too."""
    service_packages: dict[str, str] = field(default_factory=dict)
    """Every Sensorium service's short name and proto package ("pdf": "sensorium.pdf.v1"):
    reflection hides the packages a token may not call."""
    max_receive_message_bytes: int = 64 * 1024 * 1024
    """The transport's message limit; unary caps never exceed it."""
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
        self.request_id = request_id_of(incoming.get("x-request-id"))
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
        if handler is None or method in HEALTH_CHECKS:
            return handler
        if method.startswith((REFLECTION, HEALTH)):
            protect = self.state.tokens is not None and self.state.protect_reflection
            return self._authenticated(method, handler, required=protect)
        return self._wrap(method, handler)

    def _authorize(self, call: _Call, method: str) -> auth.Principal | None:
        """Name the caller (for limits and logs) and check its token: UNAUTHENTICATED without a
        valid one, PERMISSION_DENIED for a service the token may not call. Runs first, on the
        call's headers, so a caller without a token learns nothing about what this server hosts
        and makes it read nothing."""
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
        return principal

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

    def _authenticated(self, method: str, handler: Handler, *, required: bool) -> Handler:
        """Reflection and the rest of health: behind the token check when `required` (and the
        call log), reflection scoped to what the token may call; nothing else applied."""
        parse = handler.request_deserializer
        if handler.unary_unary is not None:
            single: Callable[..., Awaitable[Any]] = handler.unary_unary

            async def unary(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                call, requests = self._begin(method, context, requests, False)
                try:
                    self._authorize(call, method) if required else self._optional(call)
                    return await single(await self._read_one(call, method, requests, parse), context)
                except BaseException as exc:
                    await self._handle(call, exc)
                finally:
                    self._end(call)

            return grpc.stream_unary_rpc_method_handler(
                unary, request_deserializer=None, response_serializer=handler.response_serializer)
        stream = handler.stream_stream or handler.unary_stream
        assert stream is not None
        behavior: Callable[..., AsyncIterator[Any]] = stream  # type: ignore[assignment]
        single_request = handler.stream_stream is None

        async def wrapped(
            requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            call, requests = self._begin(method, context, requests, True)
            try:
                principal = self._authorize(call, method) if required else self._optional(call)
                if single_request:
                    requests = await self._read_one(call, method, requests, parse)
                hidden = self._hidden_packages(principal) if method.startswith(REFLECTION) else ()
                async for response in behavior(requests, context):
                    yield _scoped(response, hidden) if hidden else response
            except BaseException as exc:
                await self._handle(call, exc)
            finally:
                self._end(call)

        return grpc.stream_stream_rpc_method_handler(
            wrapped, request_deserializer=None if single_request else parse,
            response_serializer=handler.response_serializer,
        )

    def _optional(self, call: _Call) -> auth.Principal | None:
        """The caller's token where one is on and the caller sent a valid one, else None."""
        if self.state.tokens is None or auth.METADATA_KEY not in call.metadata:
            return None
        with contextlib.suppress(SensoriumError):
            return self.state.tokens.authenticate(call.metadata)
        return None

    def _hidden_packages(self, principal: auth.Principal | None) -> tuple[str, ...]:
        """Proto packages reflection must not show this caller: the services its token may not
        call (none without a token: then reflection is open by the operator's choice)."""
        if principal is None or principal.services is None:
            return ()
        return tuple(package for name, package in self.state.service_packages.items()
                     if not principal.may_call(name))

    def _admit(self, method: str, request_id: str) -> None:
        """Refuse work the server cannot do now, before the servicer runs."""
        if self.state.draining:
            raise SensoriumError(
                Reason.SHUTTING_DOWN, "the server is shutting down; retry on another replica",
                retry_after_seconds=1.0,
            )
        service = self.state.services.get(method.split("/")[1])
        if service is None:
            raise not_served(method, self.state)
        if not service.ready and service.problem is not None:
            problem = service.problem
            raise SensoriumError(problem.reason, f"{problem.message} (request id {request_id})",
                                 problem.metadata, problem.retry_after_seconds)

    def _wrap(self, method: str, handler: Handler) -> Handler:
        """The handler as a request stream at the transport (see the module docstring): a unary
        method's message is read, capped and parsed only after the call is admitted."""
        behavior = handler.unary_unary or handler.stream_unary
        if behavior is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._single_response(method, behavior, handler.request_deserializer,
                                      request_streaming=handler.stream_unary is not None),
                request_deserializer=None if handler.unary_unary else handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        stream = handler.unary_stream or handler.stream_stream
        assert stream is not None
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, stream, handler.request_deserializer,
                            request_streaming=handler.stream_stream is not None),
            request_deserializer=None if handler.unary_stream else handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _read_one(
        self, call: _Call, method: str, requests: AsyncIterator[Any], parse: Callable[[bytes], Any] | None
    ) -> Any:
        """The one message of a unary call, read now: INPUT_TOO_LARGE past the method's cap
        (naming the streaming method that takes more), INVALID_REQUEST if it does not parse."""
        raw: bytes | None = await anext(aiter(requests), None)
        if raw is None:
            raise SensoriumError(Reason.INVALID_REQUEST, "the call carried no request message")
        call.received = len(raw)
        limit = transport.unary_limit(method, self.state.max_receive_message_bytes)
        if len(raw) > limit:
            stream = transport.streaming_method(method)
            instead = f"; send it through {stream}" if stream else ""
            raise SensoriumError(
                Reason.INPUT_TOO_LARGE,
                f"the request is {len(raw)} bytes, more than the {limit} bytes one "
                f"{method.rsplit('/', 1)[1]} call may carry{instead}",
                {"size_bytes": str(len(raw)), "limit_bytes": str(limit)},
            )
        if parse is None:
            return raw
        try:
            return parse(raw)
        except DecodeError:
            raise SensoriumError(
                Reason.INVALID_REQUEST, f"the request of {method} is not a valid protobuf message"
            ) from None

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
        return call, request

    def _single_response(
        self, method: str, behavior: Callable[..., Any], parse: Callable[[bytes], Any] | None, *,
        request_streaming: bool,
    ) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call, request = self._begin(method, context, request, request_streaming)
            try:
                self._authorize(call, method)
                self._admit(method, call.request_id)
                self._limit(call)
                if not request_streaming:
                    request = await self._read_one(call, method, request, parse)
                response = await behavior(request, context)
                call.sent = _size(response)
                return response
            except BaseException as exc:
                await self._handle(call, exc)
            finally:
                self._end(call)

        return wrapped

    def _streaming(
        self, method: str, behavior: Callable[..., Any], parse: Callable[[bytes], Any] | None, *,
        request_streaming: bool,
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            call, request = self._begin(method, context, request, request_streaming)
            try:
                self._authorize(call, method)
                self._admit(method, call.request_id)
                self._limit(call)
                if not request_streaming:
                    request = await self._read_one(call, method, request, parse)
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
        elif isinstance(exc, NotImplementedError):  # a generated servicer's unimplemented method
            await call.fail(SensoriumError(Reason.NOT_HOSTED, f"{call.method} is not served here",
                                           {"method": call.method}))
        elif isinstance(exc, grpc.aio.AbortError):
            # The servicer aborted by itself; its code is already on the context.
            call.code = call.context.code() or grpc.StatusCode.UNKNOWN
            raise exc
        elif isinstance(exc, Exception):
            await call.crash(exc)
        else:
            raise exc


def not_served(method: str, state: CallState) -> SensoriumError:
    """The answer to a method this server does not serve. Only a method of a Sensorium service
    is told what this server hosts (and where to find it); any other (a probe for what runs
    here) learns nothing."""
    if method.count("/") == 2 and method.split("/")[1].startswith("sensorium."):
        return not_hosted(method, [s.name for s in state.services.values()])
    return SensoriumError(Reason.NOT_HOSTED, f"unknown method {method}", {"method": method})


def request_id_of(value: str | bytes | None) -> str:
    """The caller's `x-request-id` when it is safe to log (`REQUEST_ID`), else a new one."""
    if isinstance(value, str) and REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex[:16]


def _scoped(response: Any, hidden: tuple[str, ...]) -> Any:
    """A reflection response without the services of `hidden` packages: they are left out of a
    service list, and a request about one of their symbols or files is answered NOT_FOUND."""
    kind = response.WhichOneof("message_response")
    if kind == "list_services_response":
        services = response.list_services_response.service
        kept = [s for s in services if not _in_packages(s.name, hidden)]
        if len(kept) == len(services):
            return response
        copy = type(response)()
        copy.CopyFrom(response)
        del copy.list_services_response.service[:]
        copy.list_services_response.service.extend(kept)
        return copy
    asked = response.original_request
    name = {
        "file_by_filename": asked.file_by_filename.replace("/", "."),
        "file_containing_symbol": asked.file_containing_symbol,
        "file_containing_extension": asked.file_containing_extension.containing_type,
        "all_extension_numbers_of_type": asked.all_extension_numbers_of_type,
    }.get(asked.WhichOneof("message_request") or "", "")
    if name and _in_packages(name, hidden):
        answer = type(response)(valid_host=response.valid_host, original_request=asked)
        answer.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
        answer.error_response.error_message = "not found"
        return answer
    return response


def _in_packages(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


async def _counted(requests: Any, call: _Call) -> AsyncIterator[Any]:
    async for request in requests:
        call.received += _size(request)
        yield request


def _size(message: Any) -> int:
    size: int = message.ByteSize() if hasattr(message, "ByteSize") else len(message or b"")
    return size


class HealthChecksOnly(grpc.aio.ServerInterceptor):
    """The probe port's gate: it is plaintext and unauthenticated, so it answers only the health
    of a name the caller asks (`Check`, `Watch`), never `List` (which names every service)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = details.method
        if method in HEALTH_CHECKS:
            return await continuation(details)

        async def refuse(requests: Any, context: Any) -> AsyncIterator[Any]:
            error = SensoriumError(
                Reason.NOT_HOSTED, f"the probe port answers only health checks of a named "
                f"service, not {method}", {"method": method})
            await context.abort_with_status(status.to_status(error, uuid.uuid4().hex[:16]))
            yield  # pragma: no cover - an async generator, as stream handlers must be

        return grpc.stream_stream_rpc_method_handler(refuse)


def fallback_handler(state: CallState) -> grpc.GenericRpcHandler:
    """Answers methods no registered servicer handles. The interceptor refuses methods of
    services not hosted here; this catches unknown methods of hosted ones."""

    class Fallback(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> Handler:
            method: str = details.method

            async def refuse(requests: Any, context: Any) -> AsyncIterator[Any]:
                # Aborts by itself: pass-through methods (e.g. reflection when it is off)
                # reach this handler without the interceptor's error mapping.
                error = not_served(method, state)
                await context.abort_with_status(status.to_status(error, uuid.uuid4().hex[:16]))
                yield  # pragma: no cover - an async generator, as stream handlers must be

            # A stream-stream handler accepts unary and streaming callers alike.
            return grpc.stream_stream_rpc_method_handler(refuse)

    return Fallback()
