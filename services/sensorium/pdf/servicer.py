"""The PDF service's gRPC face: protobuf in and out, uploads spooled, the `PdfRuntime` behind.

The unary call collects the whole result (text only: images would push responses past most
clients' 4 MiB receive limit); the stream sends the metadata, then the pages as soon as their
worker returns them (one message per page, or the pages of one worker task together when the
client asks for `max_pages_per_message`), then a summary. `extract_document` and
`stream_document` make those responses from a file path without any gRPC context, so the
in-process CLI gives exactly what a server would.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from sensorium.errors import Reason, SensoriumError
from sensorium.hosting import ensure_unary_fits
from sensorium.pdf import extractor
from sensorium.pdf.runtime import PdfRuntime
from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pb_grpc
from sensorium.status import item_error
from sensorium.type.v1 import geometry_pb2
from sensorium.uploads import split_stream, spool_bytes, spool_chunks

_SIZE_SETTING = "pdf.max_document_bytes"
MAX_PAGES_PER_MESSAGE = 256
"""The server's cap on `ExtractOptions.max_pages_per_message`."""
BATCH_BYTES = 1024 * 1024
"""A `pages` message closes before it would pass this size (a single larger page goes alone,
as it would in a `page` message): responses stay well inside clients' 4 MiB receive limit."""


def add_to_server(server: grpc.aio.Server, runtime: PdfRuntime) -> None:
    pb_grpc.add_PdfServiceServicer_to_server(_Servicer(runtime), server)


def extraction_options(options: pb.ExtractOptions) -> extractor.ExtractOptions:
    return extractor.ExtractOptions(
        first_page=options.first_page, last_page=options.last_page, password=options.password,
        include_blocks=options.include_blocks, include_images=options.include_images,
        ocr=options.ocr_mode != pb.OCR_MODE_NEVER,
    )


async def extract_document(
    runtime: PdfRuntime, path: str, options: pb.ExtractOptions
) -> pb.ExtractDocumentResponse:
    """The unary call's response for the document at `path` (pages only: no images)."""
    if options.include_images:
        raise SensoriumError(
            Reason.INVALID_REQUEST,
            "images are returned only by StreamExtractDocument (they would exceed clients' "
            "4 MiB message limit here); call it, or unset options.include_images",
        )
    response = pb.ExtractDocumentResponse()
    totals = _Totals()
    results = runtime.extract(path, extraction_options(options))
    async with contextlib.aclosing(results):
        async for result in results:
            if isinstance(result, extractor.DocumentInfo):
                response.metadata.CopyFrom(_metadata(result))
                continue
            for item in result:
                if isinstance(item, extractor.PageResult):
                    totals.count(item)
                    response.pages.append(_page(item))
    response.summary.CopyFrom(totals.summary())
    ensure_unary_fits(response, "extracted text", "StreamExtractDocument, or ask for fewer pages")
    return response


async def stream_document(
    runtime: PdfRuntime, path: str, options: pb.ExtractOptions
) -> AsyncGenerator[pb.StreamExtractDocumentResponse, None]:
    """The streaming call's responses for the document at `path`: metadata, pages (batched
    when `options.max_pages_per_message` asks), images after their pages, the summary."""
    per_message = min(options.max_pages_per_message, MAX_PAGES_PER_MESSAGE)
    totals = _Totals()
    results = runtime.extract(path, extraction_options(options))
    async with contextlib.aclosing(results):
        async for result in results:
            if isinstance(result, extractor.DocumentInfo):
                yield pb.StreamExtractDocumentResponse(metadata=_metadata(result))
                continue
            for message in _stream_messages(result, per_message, totals):
                yield message
    yield pb.StreamExtractDocumentResponse(summary=totals.summary())


class _Servicer(pb_grpc.PdfServiceServicer):
    def __init__(self, runtime: PdfRuntime) -> None:
        self.runtime = runtime

    async def ExtractDocument(
        self, request: pb.ExtractDocumentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ExtractDocumentResponse:
        async with spool_bytes(
            request.content, budget=self.runtime.budget, limit=self.runtime.settings.max_document_bytes,
            what="PDF", setting=_SIZE_SETTING, suffix=".pdf",
        ) as upload:
            return await extract_document(self.runtime, str(upload.path), request.options)

    async def StreamExtractDocument(
        self,
        requests: AsyncIterator[pb.StreamExtractDocumentRequest],
        context: grpc.aio.ServicerContext[Any, Any],
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


@dataclass
class _Totals:
    """What the summary reports, counted as the pages go out."""

    pages: int = 0
    failed: int = 0
    without_text: int = 0
    images: int = 0
    started: float = field(default_factory=time.perf_counter)

    def count(self, page: extractor.PageResult) -> None:
        self.pages += 1
        self.failed += page.error is not None
        self.without_text += not page.has_text_layer

    def summary(self) -> pb.ExtractionSummary:
        return pb.ExtractionSummary(
            pages_extracted=self.pages, pages_failed=self.failed,
            pages_without_text=self.without_text, images_extracted=self.images,
            processing_seconds=time.perf_counter() - self.started,
        )


def _stream_messages(
    items: list[extractor.PageResult | extractor.ImageResult], per_message: int, totals: _Totals
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
        if isinstance(item, extractor.ImageResult):
            totals.images += item.error is None
            images.append(pb.StreamExtractDocumentResponse(image=_image(item)))
            continue
        totals.count(item)
        page = _page(item)
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


def _metadata(info: extractor.DocumentInfo) -> pb.DocumentMetadata:
    message = pb.DocumentMetadata(
        title=info.title, author=info.author, subject=info.subject, keywords=info.keywords,
        creator=info.creator, producer=info.producer, page_count=info.page_count,
        pdf_version=info.pdf_version, encrypted=info.encrypted, repaired=info.repaired,
    )
    for name, value in (("creation_time", info.creation_time),
                        ("modification_time", info.modification_time)):
        if value is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(value)
            getattr(message, name).CopyFrom(stamp)
    return message


def _bbox(box: extractor.BBox | None) -> geometry_pb2.BoundingBox | None:
    if box is None:
        return None
    return geometry_pb2.BoundingBox(x0=box.x0, y0=box.y0, x1=box.x1, y1=box.y1)


def _page(page: extractor.PageResult) -> pb.Page:
    return pb.Page(
        page_number=page.page_number, text=page.text,
        blocks=[pb.TextBlock(bbox=_bbox(b.bbox), text=b.text) for b in page.blocks],
        has_text_layer=page.has_text_layer,
        ocr_status=f"OCR_STATUS_{page.ocr_status.value}",
        ocr_message=page.ocr_message, width=page.width, height=page.height,
        error=item_error(page.error) if page.error else None, image_count=page.image_count,
    )


def _image(image: extractor.ImageResult) -> pb.EmbeddedImage:
    return pb.EmbeddedImage(
        page_number=image.page_number, index=image.index, bbox=_bbox(image.bbox),
        format=image.format, data=image.data, width=image.width, height=image.height,
        error=item_error(image.error) if image.error else None,
    )
