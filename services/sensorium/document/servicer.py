"""The document service's gRPC face: uploads spooled, the `DocumentRuntime` behind,
`document.wire` between.

The unary call returns the metadata and the sections (text only: pictures and attachments
would push responses past most clients' 4 MiB receive limit); the stream sends the metadata,
the sections in batches, the pictures, each attachment in parts of 1 MiB, then a summary.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator

import grpc

from sensorium.document import wire
from sensorium.document.api import Document, ParseOptions
from sensorium.document.runtime import SIZE_SETTING, DocumentRuntime
from sensorium.document.v1 import document_service_pb2 as pb
from sensorium.document.v1 import document_service_pb2_grpc as pb_grpc
from sensorium.errors import Reason, SensoriumError
from sensorium.rpc import UnaryBudget, ensure_unary_fits
from sensorium.status import item_error
from sensorium.uploads import split_stream, spool_bytes, spool_chunks

SECTIONS_PER_MESSAGE = 64
"""Sections per `sections` message when the client does not say."""
MAX_SECTIONS_PER_MESSAGE = 1024
"""The server's cap on `ParseOptions.max_sections_per_message`."""
BATCH_BYTES = 1024 * 1024
"""A `sections` message closes before it would pass this size (a larger section goes alone)."""
PICTURE_BYTES = 32 * 1024 * 1024
"""Pictures larger than this are sent with an error instead of their bytes: the message must
stay inside the server's and the shipped client's 64 MiB, and the embedding service refuses
larger images by default (SENSORIUM_EMBEDDING__MAX_IMAGE_BYTES)."""
UNNAMED = "document"
"""The name a document sent without a filename goes by (its attachments are "document!/...")."""

Context = grpc.aio.ServicerContext[object, object]


def add_to_server(server: grpc.aio.Server, runtime: DocumentRuntime) -> None:
    pb_grpc.add_DocumentServiceServicer_to_server(_Servicer(runtime), server)


def _options(message: pb.ParseOptions, filename: str) -> ParseOptions:
    # Only the name's last part counts: it names the format, never a place on the server.
    name = os.path.basename(filename.replace("\\", "/")) or UNNAMED
    return wire.options_from_message(message, name)


async def parse_document(
    runtime: DocumentRuntime, path: str, options: ParseOptions
) -> pb.ParseDocumentResponse:
    """The unary call's response for the document at `path` (no pictures, no attachments)."""
    if options.pictures or options.attachments:
        raise SensoriumError(
            Reason.INVALID_REQUEST,
            "pictures and attachments are returned only by StreamParseDocument (they would exceed "
            "clients' 4 MiB message limit here); call it, or unset include_pictures and "
            "include_attachments",
        )
    started = time.perf_counter()
    document = await runtime.parse(path, options)
    # Counted section by section: a small file that expands is refused before all of it is built.
    budget = UnaryBudget("document's text", "StreamParseDocument")
    for section in document.sections:
        budget.add(wire.section_to_message(section))
    response = wire.document_response(document, time.perf_counter() - started)
    ensure_unary_fits(response, "document's text", "StreamParseDocument")
    return response


def stream_messages(document: Document, seconds: float,
                    per_message: int = 0) -> Iterator[pb.StreamParseDocumentResponse]:
    """The streaming call's responses for a parsed document (see the module docstring)."""
    per_message = min(per_message or SECTIONS_PER_MESSAGE, MAX_SECTIONS_PER_MESSAGE)
    yield pb.StreamParseDocumentResponse(metadata=wire.metadata_to_message(document))
    batch: list[pb.Section] = []
    size = 0
    for section in document.sections:
        message = wire.section_to_message(section)
        if batch and (len(batch) >= per_message or size + message.ByteSize() > BATCH_BYTES):
            yield pb.StreamParseDocumentResponse(sections=pb.SectionBatch(sections=batch))
            batch, size = [], 0
        batch.append(message)
        size += message.ByteSize()
    if batch:
        yield pb.StreamParseDocumentResponse(sections=pb.SectionBatch(sections=batch))
    for picture in document.pictures:
        message_picture = wire.picture_to_message(picture)
        if len(picture.data) > PICTURE_BYTES:
            error = SensoriumError(
                Reason.INPUT_TOO_LARGE,
                f"picture {picture.name or '(unnamed)'} has {len(picture.data):,} bytes, more than "
                f"the {PICTURE_BYTES:,} a stream message carries",
                {"size_bytes": str(len(picture.data)), "limit_bytes": str(PICTURE_BYTES)},
            )
            message_picture.data = b""
            message_picture.error.CopyFrom(item_error(error))
        yield pb.StreamParseDocumentResponse(picture=message_picture)
    for attachment in document.attachments:
        for part in wire.attachment_to_messages(attachment):
            yield pb.StreamParseDocumentResponse(attachment=part)
    yield pb.StreamParseDocumentResponse(summary=wire.summary_of(document, seconds))


class _Servicer(pb_grpc.DocumentServiceServicer):
    def __init__(self, runtime: DocumentRuntime) -> None:
        self.runtime = runtime

    async def ParseDocument(
        self, request: pb.ParseDocumentRequest, context: Context
    ) -> pb.ParseDocumentResponse:
        async with spool_bytes(
            request.content, budget=self.runtime.budget, limit=self.runtime.settings.max_document_bytes,
            what="document", setting=SIZE_SETTING,
        ) as upload:
            return await parse_document(self.runtime, str(upload.path),
                                        _options(request.options, request.filename))

    async def StreamParseDocument(
        self, requests: AsyncIterator[pb.StreamParseDocumentRequest], context: Context
    ) -> AsyncIterator[pb.StreamParseDocumentResponse]:
        header, chunks = await split_stream(requests)
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.runtime.budget, limit=self.runtime.settings.max_document_bytes,
            what="document", setting=SIZE_SETTING,
        ) as upload:
            started = time.perf_counter()
            document = await self.runtime.parse(
                str(upload.path), _options(header.options, header.upload.filename))
            for message in stream_messages(document, time.perf_counter() - started,
                                           header.options.max_sections_per_message):
                yield message
