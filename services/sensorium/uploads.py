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

from sensorium import tracing
from sensorium.budget import ByteBudget
from sensorium.errors import Reason, SensoriumError


@dataclass
class Upload:
    """A spooled upload: `path` exists until the `spool_*` context exits."""

    path: Path
    size: int
    filename: str = ""


def check_size(size: int, limit: int, what: str, setting: str) -> None:
    """Refuse empty and oversized content; `setting` is the limit's settings path."""
    if size == 0:
        raise SensoriumError(Reason.INPUT_EMPTY, f"the {what} is empty (0 bytes); send its content")
    if size > limit:
        raise SensoriumError(
            Reason.INPUT_TOO_LARGE,
            f"the {what} is {size} bytes; the limit is {limit}",
            {"limit_bytes": str(limit), "size_bytes": str(size)}, setting=setting,
        )


@contextlib.asynccontextmanager
async def spool_bytes(
    content: bytes, *, budget: ByteBudget, limit: int, what: str, setting: str, suffix: str = ""
) -> AsyncIterator[Upload]:
    """Write inline content to a temporary file for the duration of the context."""
    check_size(len(content), limit, what, setting)
    with budget.hold(len(content)), _temporary(suffix) as (path, handle):
        with tracing.span("sensorium.upload", **{"sensorium.upload.bytes": len(content)}):
            await asyncio.to_thread(_write_all, handle, content)
        yield Upload(path, len(content))


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
    with budget.hold() as held, _temporary(suffix) as (path, handle):
        # The span covers receiving the chunks too: on a slow link that is the upload.
        with tracing.span("sensorium.upload", **{"sensorium.upload.streamed": True}) as span:
            async for chunk in chunks:
                if held.size + len(chunk) > limit:
                    check_size(held.size + len(chunk), limit, what, setting)
                held.add(len(chunk))
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.flush)
            span.set_attribute("sensorium.upload.bytes", held.size)
        check_size(held.size, limit, what, setting)
        yield Upload(path, held.size, filename)


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
