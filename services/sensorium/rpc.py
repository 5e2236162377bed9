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
    UnaryBudget(what, stream_method).add(response)


class UnaryBudget:
    """Counts a unary response's size as its parts are made, and refuses it (INPUT_TOO_LARGE,
    naming the streaming call) as soon as it passes what most clients accept: a small file that
    expands to millions of characters is stopped there, not after all of it was built."""

    def __init__(self, what: str, stream_method: str) -> None:
        self.what, self.stream_method = what, stream_method
        self.size = 0

    def add(self, part: Message) -> None:
        self.size += part.ByteSize()
        if self.size > UNARY_RESPONSE_LIMIT:
            raise SensoriumError(
                Reason.INPUT_TOO_LARGE,
                f"the {self.what} is more than {self.size} bytes, more than the 4 MiB most gRPC "
                f"clients accept in one message; use {self.stream_method}",
                {"size_bytes": str(self.size), "limit_bytes": str(UNARY_RESPONSE_LIMIT)},
            )


def deadline_of(context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
    """The call's deadline on the `time.monotonic()` scale runtimes and the Batcher use."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
