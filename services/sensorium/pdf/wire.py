"""The PDF service on the wire: every message of `sensorium.pdf.v1` to and from the domain types
of `sensorium.pdf.api`, in one place for the servicer (server side) and `pdf.remote` (client
side). tests/unit/test_wire.py holds the two directions together.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from sensorium.errors import Audience, explain_setting
from sensorium.pdf.api import (
    BBox,
    Block,
    DocumentInfo,
    ExtractionSummary,
    ExtractOptions,
    ImageResult,
    OcrStatus,
    PageResult,
)
from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.status import error_from_item, item_error
from sensorium.type.v1 import geometry_pb2


def options_to_message(options: ExtractOptions, pages_per_message: int = 0) -> pb.ExtractOptions:
    return pb.ExtractOptions(
        first_page=options.first_page, last_page=options.last_page, password=options.password,
        include_blocks=options.include_blocks, include_images=options.include_images,
        ocr_mode=pb.OCR_MODE_AUTO if options.ocr else pb.OCR_MODE_NEVER,
        max_pages_per_message=pages_per_message,
    )


def options_from_message(message: pb.ExtractOptions) -> ExtractOptions:
    return ExtractOptions(
        first_page=message.first_page, last_page=message.last_page, password=message.password,
        include_blocks=message.include_blocks, include_images=message.include_images,
        ocr=message.ocr_mode != pb.OCR_MODE_NEVER,
    )


def info_to_message(info: DocumentInfo) -> pb.DocumentMetadata:
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


def info_from_message(message: pb.DocumentMetadata) -> DocumentInfo:
    def when(name: str) -> datetime | None:
        if not message.HasField(name):
            return None
        stamp: timestamp_pb2.Timestamp = getattr(message, name)
        return stamp.ToDatetime(tzinfo=UTC)

    return DocumentInfo(
        title=message.title, author=message.author, subject=message.subject,
        keywords=message.keywords, creator=message.creator, producer=message.producer,
        creation_time=when("creation_time"), modification_time=when("modification_time"),
        page_count=message.page_count, pdf_version=message.pdf_version,
        encrypted=message.encrypted, repaired=message.repaired,
    )


def bbox_to_message(box: BBox | None) -> geometry_pb2.BoundingBox | None:
    if box is None:
        return None
    return geometry_pb2.BoundingBox(x0=box.x0, y0=box.y0, x1=box.x1, y1=box.y1)


def bbox_from_message(box: geometry_pb2.BoundingBox) -> BBox:
    return BBox(box.x0, box.y0, box.x1, box.y1)


def page_to_message(page: PageResult, audience: Audience = "client") -> pb.Page:
    """`page` as its message; how to change the setting behind an OCR message is worded for
    `audience` (a remote client asks the server's operator)."""
    return pb.Page(
        page_number=page.page_number, text=page.text,
        blocks=[pb.TextBlock(bbox=bbox_to_message(b.bbox), text=b.text) for b in page.blocks],
        has_text_layer=page.has_text_layer,
        ocr_status=f"OCR_STATUS_{page.ocr_status.value}",
        ocr_message=explain_setting(page.ocr_message, page.ocr_setting, audience),
        width=page.width, height=page.height,
        error=item_error(page.error, audience) if page.error else None, image_count=page.image_count,
        limit=item_error(page.limit, audience) if page.limit else None,
    )


def page_from_message(message: pb.Page) -> PageResult:
    status = pb.OcrStatus.Name(message.ocr_status).removeprefix("OCR_STATUS_")
    return PageResult(
        page_number=message.page_number, text=message.text,
        blocks=[Block(bbox_from_message(b.bbox), b.text) for b in message.blocks],
        has_text_layer=message.has_text_layer,
        ocr_status=OcrStatus(status) if status in OcrStatus.__members__ else OcrStatus.NOT_NEEDED,
        ocr_message=message.ocr_message, width=message.width, height=message.height,
        error=error_from_item(message.error) if message.HasField("error") else None,
        image_count=message.image_count,
        limit=error_from_item(message.limit) if message.HasField("limit") else None,
    )


def image_to_message(image: ImageResult, audience: Audience = "client") -> pb.EmbeddedImage:
    return pb.EmbeddedImage(
        page_number=image.page_number, index=image.index, bbox=bbox_to_message(image.bbox),
        format=image.format, data=image.data, width=image.width, height=image.height,
        error=item_error(image.error, audience) if image.error else None,
    )


def image_from_message(message: pb.EmbeddedImage) -> ImageResult:
    return ImageResult(
        page_number=message.page_number, index=message.index,
        bbox=bbox_from_message(message.bbox) if message.HasField("bbox") else None,
        format=message.format, data=message.data, width=message.width, height=message.height,
        error=error_from_item(message.error) if message.HasField("error") else None,
    )


def summary_to_message(summary: ExtractionSummary) -> pb.ExtractionSummary:
    return pb.ExtractionSummary(
        pages_extracted=summary.pages_extracted, pages_failed=summary.pages_failed,
        pages_without_text=summary.pages_without_text, images_extracted=summary.images_extracted,
        processing_seconds=summary.processing_seconds, pages_truncated=summary.pages_truncated,
    )


def summary_from_message(message: pb.ExtractionSummary) -> ExtractionSummary:
    return ExtractionSummary(
        message.pages_extracted, message.pages_failed, message.pages_without_text,
        message.images_extracted, message.processing_seconds, message.pages_truncated,
    )


def document_response(
    info: DocumentInfo | None, pages: list[PageResult], summary: ExtractionSummary,
    audience: Audience = "client",
) -> pb.ExtractDocumentResponse:
    """The unary call's response (and the CLI's `--json` document) for an extraction's parts."""
    response = pb.ExtractDocumentResponse(
        pages=[page_to_message(page, audience) for page in pages], summary=summary_to_message(summary),
    )
    if info is not None:
        response.metadata.CopyFrom(info_to_message(info))
    return response
