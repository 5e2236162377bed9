"""The document service on the wire: every message of `sensorium.document.v1` to and from the
domain types of `sensorium.document.api`, in one place for the servicer (server side) and
`document.remote` (client side). tests/unit/test_wire.py holds the two directions together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from sensorium.document.api import (
    Attachment,
    Document,
    DocumentKind,
    Locator,
    Metadata,
    ParseOptions,
    Picture,
    Section,
    SectionKind,
)
from sensorium.document.v1 import document_service_pb2 as pb
from sensorium.errors import Audience
from sensorium.status import error_from_item, item_error

ATTACHMENT_PART_BYTES = 1024 * 1024
"""Bytes of an attachment per `AttachmentPart` message."""


# --- options -----------------------------------------------------------------------------------


def options_to_message(options: ParseOptions, sections_per_message: int = 0) -> pb.ParseOptions:
    """`options` as sent (the name travels as the request's filename; the kind is the server's
    to sniff)."""
    return pb.ParseOptions(include_pictures=options.pictures, include_attachments=options.attachments,
                           attached=options.attached, max_sections_per_message=sections_per_message)


def options_from_message(message: pb.ParseOptions, filename: str = "") -> ParseOptions:
    return ParseOptions(name=filename, pictures=message.include_pictures,
                        attachments=message.include_attachments, attached=message.attached)


# --- metadata ----------------------------------------------------------------------------------


def format_to_message(kind: DocumentKind) -> str:
    """The `DocumentFormat` value's name (protobuf takes enum values by name)."""
    return f"DOCUMENT_FORMAT_{kind.name}"


def format_from_message(value: pb.DocumentFormat) -> DocumentKind:
    name = pb.DocumentFormat.Name(value).removeprefix("DOCUMENT_FORMAT_")
    if name not in DocumentKind.__members__:
        raise ValueError(f"the server read the document as {name}, a format this client does not know")
    return DocumentKind[name]


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp


def metadata_to_message(document: Document, audience: Audience = "client") -> pb.DocumentMetadata:
    info = document.metadata
    message = pb.DocumentMetadata(
        format=format_to_message(document.kind), title=info.title, author=info.author,
        language=info.language, page_count=document.page_count, converted_with=document.converted_with,
        extra=document.extra, errors=[item_error(error, audience) for error in document.errors],
    )
    if info.created is not None:
        message.created.CopyFrom(_stamp(info.created))
    if info.modified is not None:
        message.modified.CopyFrom(_stamp(info.modified))
    return message


def metadata_from_message(message: pb.DocumentMetadata) -> tuple[DocumentKind, Metadata]:
    def when(name: str) -> datetime | None:
        if not message.HasField(name):
            return None
        stamp: timestamp_pb2.Timestamp = getattr(message, name)
        return stamp.ToDatetime(tzinfo=UTC)

    metadata = Metadata(title=message.title, author=message.author, created=when("created"),
                        modified=when("modified"), language=message.language)
    return format_from_message(message.format), metadata


# --- sections and pictures -----------------------------------------------------------------------


def locator_to_message(locator: Locator) -> pb.Locator:
    return pb.Locator(
        page=locator.page, title=locator.title, sheet=locator.sheet, cells=locator.cells,
        headings=list(locator.headings), line=locator.line, start_seconds=locator.start_seconds,
        end_seconds=locator.end_seconds, description=locator.describe(),
    )


def locator_from_message(message: pb.Locator) -> Locator:
    return Locator(
        page=message.page, title=message.title, sheet=message.sheet, cells=message.cells,
        headings=tuple(message.headings), line=message.line,
        start_seconds=message.start_seconds if message.HasField("start_seconds") else None,
        end_seconds=message.end_seconds if message.HasField("end_seconds") else None,
    )


def section_to_message(section: Section, audience: Audience = "client") -> pb.Section:
    return pb.Section(
        text=section.text, locator=locator_to_message(section.locator),
        kind=f"SECTION_KIND_{section.kind.name}",
        error=item_error(section.error, audience) if section.error else None,
    )


def section_from_message(message: pb.Section) -> Section:
    kind = pb.SectionKind.Name(message.kind).removeprefix("SECTION_KIND_")
    return Section(
        text=message.text, locator=locator_from_message(message.locator),
        kind=SectionKind[kind] if kind in SectionKind.__members__ else SectionKind.TEXT,
        error=error_from_item(message.error) if message.HasField("error") else None,
    )


def picture_to_message(picture: Picture, audience: Audience = "client") -> pb.Picture:
    return pb.Picture(
        data=picture.data, format=picture.format, width=picture.width, height=picture.height,
        locator=locator_to_message(picture.locator), name=picture.name,
        error=item_error(picture.error, audience) if picture.error else None,
    )


def picture_from_message(message: pb.Picture) -> Picture:
    return Picture(
        data=message.data, format=message.format, width=message.width, height=message.height,
        locator=locator_from_message(message.locator), name=message.name,
        error=error_from_item(message.error) if message.HasField("error") else None,
    )


# --- attachments ---------------------------------------------------------------------------------


def attachment_to_messages(attachment: Attachment, audience: Audience = "client",
                           part_bytes: int = ATTACHMENT_PART_BYTES) -> Iterator[pb.AttachmentPart]:
    """`attachment` as its parts: the first with name, path and size, then the rest of the
    bytes `part_bytes` at a time."""
    data = attachment.data
    yield pb.AttachmentPart(
        name=attachment.name, path=attachment.path, size_bytes=len(data), offset=0,
        data=data[:part_bytes],
        error=item_error(attachment.error, audience) if attachment.error else None,
    )
    for offset in range(part_bytes, len(data), part_bytes):
        yield pb.AttachmentPart(path=attachment.path, offset=offset, data=data[offset:offset + part_bytes])


class AttachmentAssembler:
    """Puts attachments back together from their parts, in the order they arrive."""

    def __init__(self) -> None:
        self.done: list[Attachment] = []
        self._first: pb.AttachmentPart | None = None
        self._pieces: list[bytes] = []

    def add(self, part: pb.AttachmentPart) -> None:
        if part.offset == 0:
            self._close()
            self._first, self._pieces = part, [part.data]
            return
        if self._first is None or part.path != self._first.path:
            raise ValueError(f"an attachment part of {part.path!r} came without its first part")
        if part.offset != sum(map(len, self._pieces)):
            raise ValueError(f"the parts of attachment {part.path!r} came out of order")
        self._pieces.append(part.data)

    def finish(self) -> list[Attachment]:
        self._close()
        return self.done

    def _close(self) -> None:
        first, self._first = self._first, None
        if first is None:
            return
        data = b"".join(self._pieces)
        if len(data) != first.size_bytes:
            raise ValueError(f"attachment {first.path!r}: {len(data)} of {first.size_bytes} bytes came")
        error = error_from_item(first.error) if first.HasField("error") else None
        self.done.append(Attachment(name=first.name, path=first.path, data=data, error=error))


# --- whole documents -----------------------------------------------------------------------------


def summary_of(document: Document, seconds: float = 0.0) -> pb.ParseSummary:
    return pb.ParseSummary(
        sections=len(document.sections),
        sections_failed=sum(1 for section in document.sections if section.error is not None),
        characters=sum(len(section.text) for section in document.sections),
        pictures=sum(1 for picture in document.pictures if picture.error is None),
        attachments=len(document.attachments), processing_seconds=seconds,
    )


def document_response(document: Document, seconds: float = 0.0,
                      audience: Audience = "client") -> pb.ParseDocumentResponse:
    """The unary call's response (and the CLI's `--json` document): metadata, sections, summary."""
    return pb.ParseDocumentResponse(
        metadata=metadata_to_message(document, audience),
        sections=[section_to_message(section, audience) for section in document.sections],
        summary=summary_of(document, seconds),
    )


def document_from_parts(metadata: pb.DocumentMetadata, sections: Sequence[pb.Section],
                        pictures: Sequence[pb.Picture] = (),
                        attachments: Sequence[Attachment] = ()) -> Document:
    """A `Document` from what a response or a stream carried."""
    kind, info = metadata_from_message(metadata)
    return Document(
        kind=kind, metadata=info, sections=tuple(section_from_message(s) for s in sections),
        pictures=tuple(picture_from_message(p) for p in pictures), attachments=tuple(attachments),
        errors=tuple(error_from_item(error) for error in metadata.errors),
        page_count=metadata.page_count, converted_with=metadata.converted_with, extra=dict(metadata.extra),
    )


def document_from_response(response: pb.ParseDocumentResponse) -> Document:
    return document_from_parts(response.metadata, response.sections)
