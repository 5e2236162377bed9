"""The PDF service: gRPC messages in and out, extraction in the worker pool.

The unary call collects the whole result (text only: images would push responses past most
clients' 4 MiB receive limit); the stream sends the metadata, then the pages as soon as their
worker returns them (one message per page, or the pages of one worker task together when the
client asks for `max_pages_per_message`), then a summary.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from sensorium import metrics
from sensorium.errors import Reason, SensoriumError, item_error
from sensorium.hosting import HostedService, ensure_unary_fits
from sensorium.pdf import extractor
from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pb_grpc
from sensorium.pdf.workers import PdfWorkerPool
from sensorium.settings import Settings
from sensorium.type.v1 import geometry_pb2
from sensorium.uploads import ByteBudget, split_stream, spool_bytes, spool_chunks

_SIZE_SETTING = "SENSORIUM_PDF__MAX_DOCUMENT_BYTES"
MAX_PAGES_PER_MESSAGE = 256
"""The server's cap on `ExtractOptions.max_pages_per_message`."""
BATCH_BYTES = 1024 * 1024
"""A `pages` message closes before it would pass this size (a single larger page goes alone,
as it would in a `page` message): responses stay well inside clients' 4 MiB receive limit."""

_Results = extractor.DocumentInfo | list[extractor.PageResult | extractor.ImageResult]


class PdfService(HostedService):
    name = "pdf"
    full_name = "sensorium.pdf.v1.PdfService"

    def __init__(self, settings: Settings, budget: ByteBudget) -> None:
        super().__init__()
        self.settings = settings.pdf
        self.budget = budget
        self.pool: PdfWorkerPool | None = None

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_PdfServiceServicer_to_server(_Servicer(self), server)

    async def start(self) -> None:
        self.pool = PdfWorkerPool(self.settings, on_worker_restart=_count_restart)
        await self.pool.warm_up()

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def extract(self, path: str, options: pb.ExtractOptions) -> AsyncIterator[_Results]:
        """The pool's results (the document's info, then lists of the items each worker task
        extracted), with the document's metrics recorded, whatever the outcome."""
        assert self.pool is not None, "start() runs before any call is admitted"
        started, outcome = time.perf_counter(), "ok"
        try:
            results = self.pool.extract(path, _options(options))
            async with contextlib.aclosing(results):
                async for result in results:
                    if isinstance(result, list):
                        pages = [item for item in result if isinstance(item, extractor.PageResult)]
                        failed = sum(1 for page in pages if page.error)
                        _PAGES_OK.inc(len(pages) - failed)
                        if failed:
                            _PAGES_FAILED.inc(failed)
                    yield result
        except SensoriumError as error:
            outcome = error.reason.name
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            metrics.PDF_DOCUMENTS.labels(outcome).inc()
            metrics.PDF_SECONDS.observe(time.perf_counter() - started)


_PAGES_OK = metrics.PDF_PAGES.labels("ok")
_PAGES_FAILED = metrics.PDF_PAGES.labels("failed")


def _count_restart(reason: str) -> None:
    metrics.WORKER_RESTARTS.labels("pdf", reason).inc()


class _Servicer(pb_grpc.PdfServiceServicer):
    def __init__(self, service: PdfService) -> None:
        self.service = service

    async def ExtractDocument(
        self, request: pb.ExtractDocumentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ExtractDocumentResponse:
        if request.options.include_images:
            raise SensoriumError(
                Reason.INVALID_REQUEST,
                "images are returned only by StreamExtractDocument (they would exceed clients' "
                "4 MiB message limit here); call it, or unset options.include_images",
            )
        response = pb.ExtractDocumentResponse()
        totals = _Totals()
        async with spool_bytes(
            request.content, budget=self.service.budget, limit=self.service.settings.max_document_bytes,
            what="PDF", setting=_SIZE_SETTING, suffix=".pdf",
        ) as upload:
            async for result in self.service.extract(str(upload.path), request.options):
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

    async def StreamExtractDocument(
        self,
        requests: AsyncIterator[pb.StreamExtractDocumentRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamExtractDocumentResponse]:
        header, chunks = await split_stream(requests)
        per_message = min(header.options.max_pages_per_message, MAX_PAGES_PER_MESSAGE)
        totals = _Totals()
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.service.budget, limit=self.service.settings.max_document_bytes,
            what="PDF", setting=_SIZE_SETTING, suffix=".pdf",
        ) as upload:
            async for result in self.service.extract(str(upload.path), header.options):
                if isinstance(result, extractor.DocumentInfo):
                    yield pb.StreamExtractDocumentResponse(metadata=_metadata(result))
                    continue
                for message in _stream_messages(result, per_message, totals):
                    yield message
        yield pb.StreamExtractDocumentResponse(summary=totals.summary())


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


def _options(options: pb.ExtractOptions) -> extractor.ExtractOptions:
    return extractor.ExtractOptions(
        first_page=options.first_page, last_page=options.last_page, password=options.password,
        include_blocks=options.include_blocks, include_images=options.include_images,
        ocr=options.ocr_mode != pb.OCR_MODE_NEVER,
    )


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


def create(settings: Settings, budget: ByteBudget) -> HostedService:
    return PdfService(settings, budget)
