"""The PDF service's gRPC face: uploads spooled, the `PdfRuntime` behind, `pdf.wire` between.

The unary call collects the whole result (text only: images would push responses past most
clients' 4 MiB receive limit); the stream sends the metadata, then the pages as soon as their
worker returns them (one message per page, or the pages of one worker task together when the
client asks for `max_pages_per_message`), then a summary.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from sensorium.errors import Reason, SensoriumError
from sensorium.pdf import wire
from sensorium.pdf.api import DocumentInfo, ExtractOptions, ImageResult, PageResult, Totals
from sensorium.pdf.runtime import PdfRuntime
from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pb_grpc
from sensorium.rpc import UnaryBudget, ensure_unary_fits
from sensorium.uploads import split_stream, spool_bytes, spool_chunks

_SIZE_SETTING = "pdf.max_document_bytes"
MAX_PAGES_PER_MESSAGE = 256
"""The server's cap on `ExtractOptions.max_pages_per_message`."""
BATCH_BYTES = 1024 * 1024
"""A `pages` message closes before it would pass this size (a single larger page goes alone,
as it would in a `page` message): responses stay well inside clients' 4 MiB receive limit."""

Context = grpc.aio.ServicerContext[object, object]


def add_to_server(server: grpc.aio.Server, runtime: PdfRuntime) -> None:
    pb_grpc.add_PdfServiceServicer_to_server(_Servicer(runtime), server)


async def extract_document(
    runtime: PdfRuntime, path: str, options: ExtractOptions
) -> pb.ExtractDocumentResponse:
    """The unary call's response for the document at `path` (pages only: no images)."""
    if options.include_images:
        raise SensoriumError(
            Reason.INVALID_REQUEST,
            "images are returned only by StreamExtractDocument (they would exceed clients' "
            "4 MiB message limit here); call it, or unset options.include_images",
        )
    info: DocumentInfo | None = None
    pages: list[PageResult] = []
    totals = Totals()
    budget = UnaryBudget("extracted text", "StreamExtractDocument, or ask for fewer pages")
    results = runtime.extract(path, options)
    async with contextlib.aclosing(results):  # leaving early stops the extraction
        async for result in results:
            if isinstance(result, DocumentInfo):
                info = result
                continue
            for item in result:
                totals.count(item)
                if isinstance(item, PageResult):
                    budget.add(wire.page_to_message(item))
                    pages.append(item)
    response = wire.document_response(info, pages, totals.summary())
    ensure_unary_fits(response, "extracted text", "StreamExtractDocument, or ask for fewer pages")
    return response


async def stream_document(
    runtime: PdfRuntime, path: str, options: pb.ExtractOptions
) -> AsyncGenerator[pb.StreamExtractDocumentResponse, None]:
    """The streaming call's responses for the document at `path`: metadata, pages (batched
    when `options.max_pages_per_message` asks), images after their pages, the summary."""
    per_message = min(options.max_pages_per_message, MAX_PAGES_PER_MESSAGE)
    totals = Totals()
    results = runtime.extract(path, wire.options_from_message(options))
    async with contextlib.aclosing(results):
        async for result in results:
            if isinstance(result, DocumentInfo):
                yield pb.StreamExtractDocumentResponse(metadata=wire.info_to_message(result))
                continue
            for message in _stream_messages(result, per_message, totals):
                yield message
    yield pb.StreamExtractDocumentResponse(summary=wire.summary_to_message(totals.summary()))


class _Servicer(pb_grpc.PdfServiceServicer):
    def __init__(self, runtime: PdfRuntime) -> None:
        self.runtime = runtime

    async def ExtractDocument(
        self, request: pb.ExtractDocumentRequest, context: Context
    ) -> pb.ExtractDocumentResponse:
        async with spool_bytes(
            request.content, budget=self.runtime.budget, limit=self.runtime.settings.max_document_bytes,
            what="PDF", setting=_SIZE_SETTING, suffix=".pdf",
        ) as upload:
            return await extract_document(self.runtime, str(upload.path),
                                          wire.options_from_message(request.options))

    async def StreamExtractDocument(
        self, requests: AsyncIterator[pb.StreamExtractDocumentRequest], context: Context
    ) -> AsyncIterator[pb.StreamExtractDocumentResponse]:
        header, chunks = await split_stream(requests)
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.runtime.budget, limit=self.runtime.settings.max_document_bytes,
            what="PDF", setting=_SIZE_SETTING, suffix=".pdf",
        ) as upload:
            messages = stream_document(self.runtime, str(upload.path), header.options)
            async with contextlib.aclosing(messages):
                async for message in messages:
                    yield message


def _stream_messages(
    items: list[PageResult | ImageResult], per_message: int, totals: Totals
) -> list[pb.StreamExtractDocumentResponse]:
    """The stream messages for one worker task's items, in order: each page in a `page`
    message (per_message <= 1), or the pages in `pages` batches of up to `per_message` pages
    and BATCH_BYTES, each batch followed by its pages' images."""
    messages: list[pb.StreamExtractDocumentResponse] = []
    batch: list[pb.Page] = []
    batch_bytes = 0
    images: list[pb.StreamExtractDocumentResponse] = []

    def close_batch() -> None:
        nonlocal batch, batch_bytes, images
        if batch:
            messages.append(pb.StreamExtractDocumentResponse(pages=pb.PageBatch(pages=batch)))
        messages.extend(images)
        batch, batch_bytes, images = [], 0, []

    for item in items:
        totals.count(item)
        if isinstance(item, ImageResult):
            images.append(pb.StreamExtractDocumentResponse(image=wire.image_to_message(item)))
            continue
        page = wire.page_to_message(item)
        if per_message <= 1:
            close_batch()  # the previous page's images
            messages.append(pb.StreamExtractDocumentResponse(page=page))
            continue
        size = page.ByteSize()
        if batch and (len(batch) >= per_message or batch_bytes + size > BATCH_BYTES):
            close_batch()
        batch.append(page)
        batch_bytes += size
    close_batch()
    return messages
