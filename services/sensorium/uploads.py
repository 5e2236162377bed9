"""Uploads: files that arrive inline or as a header plus chunks, spooled to temporary files.

Workers open uploads by path, so large files are never pickled through a pipe. Every upload
counts against one server-wide byte budget (`SENSORIUM_MAX_UPLOAD_BYTES_IN_FLIGHT`): per-message
limits alone would let many concurrent streams exhaust memory or disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sensorium import metrics, tracing
from sensorium.errors import Reason, SensoriumError
from sensorium.limits import CURRENT_CLIENT, RETRY_AFTER_SECONDS


class ByteBudget:
    """Bytes held by uploads across all calls, and per client (`per_client_limit`, 0 =
    unlimited; the client is `limits.CURRENT_CLIENT`, set by the interceptor); a call that
    does not fit is refused at once. `take` and `give` of one call run in that call's
    context, so both see the same client."""

    def __init__(self, limit: int, per_client_limit: int = 0) -> None:
        self.limit = limit
        self.used = 0
        self.per_client_limit = per_client_limit
        self.per_client: dict[str, int] = {}

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise SensoriumError(
                Reason.OVERLOADED,
                f"the server holds {self.used} bytes of uploads and cannot take {n} more "
                f"(limit {self.limit}); retry shortly",
                retry_after_seconds=1.0,
            )
        client = CURRENT_CLIENT.get() if self.per_client_limit else None
        if client is not None:
            held = self.per_client.get(client, 0)
            if held + n > self.per_client_limit:
                raise SensoriumError(
                    Reason.CLIENT_LIMIT,
                    f"this client ({client}) has {held} bytes of uploads held by the server and "
                    f"cannot add {n} more (limit {self.per_client_limit}, "
                    "SENSORIUM_LIMITS__MAX_UPLOAD_BYTES_PER_CLIENT); send fewer files at once",
                    {"limit_bytes": str(self.per_client_limit)},
                    retry_after_seconds=RETRY_AFTER_SECONDS,
                )
            self.per_client[client] = held + n
        self.used += n
        metrics.UPLOAD_BYTES_IN_FLIGHT.set(self.used)

    def give(self, n: int) -> None:
        self.used -= n
        metrics.UPLOAD_BYTES_IN_FLIGHT.set(self.used)
        client = CURRENT_CLIENT.get() if self.per_client_limit else None
        if client is not None:
            held = self.per_client.get(client, 0) - n
            if held > 0:
                self.per_client[client] = held
            else:
                self.per_client.pop(client, None)


@dataclass
class Upload:
    """A spooled upload: `path` exists until the `spool_*` context exits."""

    path: Path
    size: int
    filename: str = ""


def check_size(size: int, limit: int, what: str, setting: str) -> None:
    """Refuse empty and oversized content with a message naming the limit and its setting."""
    if size == 0:
        raise SensoriumError(Reason.INPUT_EMPTY, f"the {what} is empty (0 bytes); send its content")
    if size > limit:
        raise SensoriumError(
            Reason.INPUT_TOO_LARGE,
            f"the {what} is {size} bytes; the limit is {limit} ({setting})",
            {"limit_bytes": str(limit), "size_bytes": str(size)},
        )


@contextlib.asynccontextmanager
async def spool_bytes(
    content: bytes, *, budget: ByteBudget, limit: int, what: str, setting: str, suffix: str = ""
) -> AsyncIterator[Upload]:
    """Write inline content to a temporary file for the duration of the context."""
    check_size(len(content), limit, what, setting)
    budget.take(len(content))
    try:
        with _temporary(suffix) as (path, handle):
            with tracing.span("sensorium.upload", **{"sensorium.upload.bytes": len(content)}):
                await asyncio.to_thread(_write_all, handle, content)
            yield Upload(path, len(content))
    finally:
        budget.give(len(content))


@contextlib.asynccontextmanager
async def spool_chunks(
    chunks: AsyncIterator[bytes],
    *,
    declared_size: int,
    filename: str,
    budget: ByteBudget,
    limit: int,
    what: str,
    setting: str,
    suffix: str = "",
) -> AsyncIterator[Upload]:
    """Receive a chunked upload into a temporary file, enforcing the limits as bytes arrive."""
    if declared_size > limit:
        check_size(declared_size, limit, what, setting)
    taken = 0
    try:
        with _temporary(suffix) as (path, handle):
            # The span covers receiving the chunks too: on a slow link that is the upload.
            with tracing.span("sensorium.upload", **{"sensorium.upload.streamed": True}) as span:
                async for chunk in chunks:
                    if taken + len(chunk) > limit:
                        check_size(taken + len(chunk), limit, what, setting)
                    budget.take(len(chunk))
                    taken += len(chunk)
                    await asyncio.to_thread(handle.write, chunk)
                await asyncio.to_thread(handle.flush)
                span.set_attribute("sensorium.upload.bytes", taken)
            check_size(taken, limit, what, setting)
            yield Upload(path, taken, filename)
    finally:
        budget.give(taken)


async def split_stream(
    requests: AsyncIterator[Any], header_field: str = "header", chunk_field: str = "chunk"
) -> tuple[Any, AsyncIterator[bytes]]:
    """Read a `header`-then-`chunk`s request stream: the header, and an iterator of chunk bytes."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("message") != header_field:
        raise SensoriumError(
            Reason.INVALID_REQUEST,
            f"the first message of the stream must carry `{header_field}`; send the header, "
            f"then the content as `{chunk_field}` messages",
        )

    async def chunks() -> AsyncIterator[bytes]:
        async for message in requests:
            if message.WhichOneof("message") != chunk_field:
                raise SensoriumError(
                    Reason.INVALID_REQUEST,
                    f"only the first message may carry `{header_field}`; later ones carry "
                    f"`{chunk_field}`",
                )
            yield getattr(message, chunk_field)

    return getattr(first, header_field), chunks()


@contextlib.contextmanager
def _temporary(suffix: str) -> Iterator[tuple[Path, IO[bytes]]]:
    fd, name = tempfile.mkstemp(prefix="sensorium-upload-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield Path(name), handle
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _write_all(handle: IO[bytes], content: bytes) -> None:
    handle.write(content)
    handle.flush()
