"""OpenTelemetry traces: a span per call, with child spans for its phases.

Off unless `SENSORIUM_TRACING__ENABLED`; then every data-plane call gets a SERVER span (named
`package.Service/Method`, with the request id of its log line as `sensorium.request_id`, and
joined to the caller's trace when it sends W3C `traceparent` metadata), and the code it runs
adds child spans: `sensorium.upload` (spooling an upload), and per item of a model batch
`sensorium.queue_wait` (queued until its batch started) and `sensorium.model` (the batch's
model run, with its size). Spans go to an OTLP/gRPC collector in batches, off the event loop.

The OpenTelemetry packages (the `tracing` extra) are imported only by `configure`, so a server
without them runs as long as tracing is off, and every helper here returns at once when it is.
Runtimes call `capture()` where work is handed to another thread and `record()` there once
the phase's times are known: a phase measured on a worker thread still lands in the caller's
trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sensorium.settings import TracingSettings

log = logging.getLogger(__name__)

TRACER_NAME = "sensorium"
REQUEST_ID = "sensorium.request_id"
# gRPC codes that mark a SERVER span as failed (OpenTelemetry's RPC conventions): the others
# are the client's doing and leave the span unset.
_SERVER_ERRORS = {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
                  "DATA_LOSS"}

_tracer: Any = None
_provider: Any = None


class TracingError(Exception):
    """Tracing is asked for but cannot run; the message says how to fix it."""


class _NoSpan:
    """What the helpers hand out while tracing is off."""

    def set_attribute(self, key: str, value: object) -> None:
        pass


NO_SPAN = _NoSpan()


def enabled() -> bool:
    return _tracer is not None


def configure(settings: TracingSettings, exporter: Any = None) -> None:
    """Turn tracing on. Spans go to `exporter` as they end (tests pass an in-memory one), or
    by default in batches to the OTLP/gRPC collector the settings (or the standard
    OTEL_EXPORTER_OTLP_* variables) name. Raises `TracingError` without the packages."""
    global _tracer, _provider
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:
        raise TracingError(
            "SENSORIUM_TRACING__ENABLED needs the OpenTelemetry packages: "
            "pip install 'sensorium[tracing]'"
        ) from None
    name = os.environ.get("OTEL_SERVICE_NAME") or settings.service_name
    provider = TracerProvider(
        resource=Resource.create({"service.name": name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # None lets the exporter read OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT; an http:// endpoint
        # is plaintext, https:// is TLS.
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint or None)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    shutdown()
    # A provider of our own, not the process-wide one: OpenTelemetry allows setting that only
    # once, and tests configure tracing several times.
    _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)
    log.info("tracing on", extra={"endpoint": settings.otlp_endpoint or "OTEL_EXPORTER_OTLP_*",
                                  "sample_ratio": settings.sample_ratio, "service_name": name})


def shutdown() -> None:
    """Export what is buffered and turn tracing off."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


# ---- calls (the interceptor) -------------------------------------------------------------------

def start_call(method: str, request_id: str, metadata: Mapping[str, Any]) -> Any:
    """The SERVER span of a call (None when tracing is off); end it with `end_call`."""
    if _tracer is None:
        return None
    from opentelemetry import propagate, trace

    # Only the propagation keys are read (traceparent, tracestate, baggage): never the rest of
    # the metadata, which holds the caller's token.
    parent = propagate.extract({k: v for k, v in metadata.items() if isinstance(v, str)})
    service, _, name = method.lstrip("/").partition("/")
    return _tracer.start_span(
        method.lstrip("/"), context=parent, kind=trace.SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name,
                    REQUEST_ID: request_id},
    )


def enter(span: Any) -> Any:
    """Make `span` the current span of this task (the parent of spans started in it and in
    tasks and threads it starts); returns what `leave` needs."""
    if span is None:
        return None
    from opentelemetry import context, trace

    return context.attach(trace.set_span_in_context(span))


def leave(token: Any) -> None:
    """Undo `enter`, in the same task."""
    if token is not None:
        from opentelemetry import context

        context.detach(token)


def end_call(span: Any, code: str, code_number: int, reason: str, client: str) -> None:
    """Record the call's outcome (status code name and number, Sensorium reason) and end it."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code_number)
    if reason:
        span.set_attribute("sensorium.reason", reason)
    if client:
        span.set_attribute("sensorium.client", client)  # a label; never the token itself
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, f"{code} {reason}".strip()))
    span.end()


# ---- phases (uploads, runtimes) ----------------------------------------------------------------

@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A child span of the current one around a phase on this thread or task; yields
    something with `set_attribute` (a no-op when tracing is off)."""
    if _tracer is None:
        yield NO_SPAN
        return
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def capture() -> Any:
    """The current trace context and the wall time, to hand with work to another thread
    (None when tracing is off: callers store it as is)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current(), time.time_ns()


def record(name: str, captured: Any, start_ns: int, end_ns: int, **attributes: Any) -> None:
    """A finished span `name` in the trace `captured` came from, from `start_ns` to `end_ns`
    (`time.time_ns()`). Thread-safe; a no-op when tracing is off or nothing was captured."""
    if _tracer is None or captured is None:
        return
    parent, _ = captured
    phase = _tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
    phase.end(end_time=end_ns)


def record_batch(batcher: str, captured: Sequence[Any], start_ns: int, end_ns: int,
                 failed: bool) -> None:
    """For each item of one model batch: its queue wait (from its capture to `start_ns`) and
    the batch's model run (`start_ns` to `end_ns`), in the item's own trace."""
    if _tracer is None:
        return
    size = len(captured)
    for item in captured:
        if item is None:
            continue
        record("sensorium.queue_wait", item, item[1], start_ns, **{"sensorium.batcher": batcher})
        record("sensorium.model", item, start_ns, end_ns, **{
            "sensorium.batcher": batcher, "sensorium.batch_size": size, "sensorium.failed": failed,
        })
