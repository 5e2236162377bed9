"""Small helpers every gRPC servicer shares: the call's deadline, the unary response cap."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf.message import Message

from sensorium.errors import Reason, SensoriumError

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
