"""The PDF service: gRPC messages in and out, extraction in the worker pool.

The unary call collects the whole result (text only: images would push responses past most
clients' 4 MiB receive limit); the stream sends the metadata, then each page as soon as its
worker returns it, then a summary.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
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

    async def extract(self, path: str, options: pb.ExtractOptions) -> AsyncIterator[Any]:
        """Extracted items with the document's metrics recorded, whatever the outcome."""
        assert self.pool is not None, "start() runs before any call is admitted"
        started, outcome = time.perf_counter(), "ok"
        try:
            items = self.pool.extract(path, _options(options))
            async with contextlib.aclosing(items):
                async for item in items:
                    if isinstance(item, extractor.PageResult):
                        metrics.PDF_PAGES.labels("failed" if item.error else "ok").inc()
                    yield item
        except SensoriumError as error:
            outcome = error.reason.name
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            metrics.PDF_DOCUMENTS.labels(outcome).inc()
            metrics.PDF_SECONDS.observe(time.perf_counter() - started)


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
        started = time.perf_counter()
        async with spool_bytes(
            request.content, budget=self.service.budget, limit=self.service.settings.max_document_bytes,
            what="PDF", setting=_SIZE_SETTING, suffix=".pdf",
        ) as upload:
            async for item in self.service.extract(str(upload.path), request.options):
                if isinstance(item, extractor.DocumentInfo):
                    response.metadata.CopyFrom(_metadata(item))
                elif isinstance(item, extractor.PageResult):
                    response.pages.append(_page(item))
        response.summary.CopyFrom(_summary(response.pages, 0, time.perf_counter() - started))
        ensure_unary_fits(response, "extracted text", "StreamExtractDocument, or ask for fewer pages")
        return response

    async def StreamExtractDocument(
        self,
        requests: AsyncIterator[pb.StreamExtractDocumentRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamExtractDocumentResponse]:
        header, chunks = await split_stream(requests)
        pages: list[pb.Page] = []
        images = 0
        started = time.perf_counter()
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.service.budget, limit=self.service.settings.max_document_bytes,
            what="PDF", setting=_SIZE_SETTING, suffix=".pdf",
        ) as upload:
            async for item in self.service.extract(str(upload.path), header.options):
                if isinstance(item, extractor.DocumentInfo):
                    yield pb.StreamExtractDocumentResponse(metadata=_metadata(item))
                elif isinstance(item, extractor.PageResult):
                    page = _page(item)
                    pages.append(pb.Page(error=page.error, has_text_layer=page.has_text_layer))
                    yield pb.StreamExtractDocumentResponse(page=page)
                else:
                    images += not item.error
                    yield pb.StreamExtractDocumentResponse(image=_image(item))
        summary = _summary(pages, images, time.perf_counter() - started)
        yield pb.StreamExtractDocumentResponse(summary=summary)


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
    for field, value in (("creation_time", info.creation_time),
                         ("modification_time", info.modification_time)):
        if value is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(value)
            getattr(message, field).CopyFrom(stamp)
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


def _summary(pages: Sequence[pb.Page], images: int, seconds: float) -> pb.ExtractionSummary:
    return pb.ExtractionSummary(
        pages_extracted=len(pages), pages_failed=sum(p.HasField("error") for p in pages),
        pages_without_text=sum(not p.has_text_layer for p in pages), images_extracted=images,
        processing_seconds=seconds,
    )


def create(settings: Settings, budget: ByteBudget) -> HostedService:
    return PdfService(settings, budget)
