"""The PDF service over gRPC: its calls as they are on the wire (`PdfClient`), and the
`PdfEngine` of the one seam over them (`RemotePdf`), answering in the domain types.

Small documents go inline (the unary call); larger ones, and any extraction with images, are
uploaded through the stream, whose pages come back in batches.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING

from sensorium.pdf import wire
from sensorium.pdf.api import ExtractOptions, PdfEngine, Results
from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.remote import remote_errors

if TYPE_CHECKING:
    from sensorium.client import Client

INLINE_LIMIT = 4 * 1024 * 1024
"""Documents up to this size go inline (unary): the request size most gRPC servers accept."""
PAGES_PER_MESSAGE = 32
"""Streamed pages come in batches of up to this many: one gRPC message per page costs the
server and this client more CPU than the rest of handling the page (docs/benchmarks.md)."""


SERVICE = "/sensorium.pdf.v1.PdfService/"


class PdfClient:
    """The PDF service's calls, protobuf in and out, on `client`'s channel."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def extract_document(
        self, content: bytes, options: pb.ExtractOptions | None = None
    ) -> pb.ExtractDocumentResponse:
        request = pb.ExtractDocumentRequest(content=content, options=options)
        return await self.client.call(SERVICE + "ExtractDocument", request, pb.ExtractDocumentResponse)

    def stream_extract_document(
        self, path: Path, options: pb.ExtractOptions | None = None
    ) -> AsyncGenerator[pb.StreamExtractDocumentResponse, None]:
        return self.client.upload_file(
            SERVICE + "StreamExtractDocument", path,
            lambda upload: pb.StreamExtractDocumentRequest(
                header=pb.StreamExtractDocumentHeader(upload=upload, options=options)),
            lambda chunk: pb.StreamExtractDocumentRequest(chunk=chunk),
            pb.StreamExtractDocumentResponse, media_type="application/pdf")


class RemotePdf:
    """The PDF service of the server `client` talks to, as a `PdfEngine`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = PdfClient(client)

    async def extract(
        self, path: str | os.PathLike[str], options: ExtractOptions
    ) -> AsyncGenerator[Results, None]:
        path = Path(path)
        async with remote_errors(self.client.target):
            if not options.include_images and path.stat().st_size <= INLINE_LIMIT:
                response = await self.calls.extract_document(path.read_bytes(),
                                                              wire.options_to_message(options))
                if response.HasField("metadata"):
                    yield wire.info_from_message(response.metadata)
                yield [wire.page_from_message(page) for page in response.pages]
                return
            messages = self.calls.stream_extract_document(
                path, wire.options_to_message(options, PAGES_PER_MESSAGE))
            async with contextlib.aclosing(messages):  # leaving early cancels the call
                async for message in messages:
                    kind = message.WhichOneof("result")
                    if kind == "metadata":
                        yield wire.info_from_message(message.metadata)
                    elif kind == "pages":
                        yield [wire.page_from_message(page) for page in message.pages.pages]
                    elif kind == "page":
                        yield [wire.page_from_message(message.page)]
                    elif kind == "image":
                        yield [wire.image_from_message(message.image)]


if TYPE_CHECKING:
    _ENGINE: type[PdfEngine] = RemotePdf  # mypy: RemotePdf is a PdfEngine
