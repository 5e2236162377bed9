"""What the gRPC transport admits before any Sensorium code runs: HTTP/2 bounds and the size of
each unary request.

grpc.aio receives a unary request whole before it calls the method's handler, and grants the
client flow-control window for all of it as soon as the call starts: a caller could make the
server hold a message of up to SENSORIUM_MAX_RECEIVE_MESSAGE_BYTES per stream before anything
looked at its token. So the interceptor serves every method as a request stream at the transport
(`interceptor.ServiceInterceptor`): it decides from the call's headers (token, service, readiness,
the caller's slots) and reads the message only when the call is admitted, then holds it to the
method's cap (each service's registry row declares its caps: `ServiceSpec.unary_limits`). Files
larger than a unary cap go through the streaming methods, which charge the byte budget chunk by
chunk as they arrive.
"""

from __future__ import annotations

from typing import Any

from sensorium.registry import ServiceSpec, by_grpc_name
from sensorium.settings import Settings


def unary_limit(method: str, transport_limit: int) -> int:
    """The most bytes a unary request of `method` ("/pkg.Service/Method") may have: its
    service's cap (the registry row's `unary_limits`), never more than the transport's. Methods
    of no registered service (test services) are held to SENSORIUM_MAX_RECEIVE_MESSAGE_BYTES."""
    spec, name = _method(method)
    limit = spec.unary_limits.get(name, transport_limit) if spec is not None else transport_limit
    return min(limit, transport_limit)


def streaming_method(method: str) -> str | None:
    """The streaming method that takes what `method`'s cap refuses, if it has one."""
    spec, name = _method(method)
    return spec.streaming.get(name) if spec is not None else None


def _method(method: str) -> tuple[ServiceSpec | None, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return by_grpc_name(service), name


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """Channel arguments of the API port (grpc core's names)."""
    transport = settings.transport
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        ("grpc.max_send_message_length", settings.max_send_message_bytes),
        # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: past it a client queues its calls itself.
        ("grpc.max_concurrent_streams", transport.max_streams_per_connection),
        # No bandwidth-delay probing: with it grpc core grows every stream's window to ~4 MiB on a
        # fast link, and a stream takes that much before its call is even looked at (64 streams
        # x 4 MiB per connection). A call that reads still gets window for its whole message.
        ("grpc.http2.bdp_probe", 0),
        # A connection with no call for this long is closed (GOAWAY); clients reconnect.
        ("grpc.max_connection_idle_ms", int(transport.connection_idle_seconds * 1000)),
    ]
    if transport.connection_max_age_seconds > 0:
        # Then its calls get the grace period to finish, and new calls go to a new connection.
        options += [
            ("grpc.max_connection_age_ms", int(transport.connection_max_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(transport.connection_age_grace_seconds * 1000)),
        ]
    return options
