"""The document engine's entry point: `parse(path, kind, limits)` -> `Document`.

Pure library code: no gRPC, no settings object, no threads. It runs inside worker processes
(`sensorium.workers.WorkerPool`: time limit, memory cap, crash isolation), because the parsers
are large C and Python libraries fed hostile files. Each format's module adds its sections to a
`Builder`; this module checks the container first (zip bombs, XML entities, encryption), maps
the libraries' exceptions to DOCUMENT_UNREADABLE, and stops a document at its character budget
while keeping what was read.

Which library reads which format, and why (measured in docs/documents.md):
docx python-docx, pptx python-pptx, xlsx openpyxl (read-only), ODF lxml directly, RTF striprtf,
EPUB ebooklib, HTML selectolax (Lexbor), mail the standard library and extract-msg, text with
an incremental decoder after charset-normalizer's detection, legacy Office LibreOffice.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable

from sensorium.document import guards, legacy, markup, office, opendocument, text
from sensorium.document.api import LEGACY_KINDS, Document, DocumentKind, Metadata, ParseOptions
from sensorium.document.builder import Builder
from sensorium.document.guards import DocumentTooLong, Limits
from sensorium.document.mail import parse_eml, parse_msg
from sensorium.document.sniff import HEAD_BYTES, sniff
from sensorium.errors import Reason, SensoriumError

log = logging.getLogger("sensorium.document")

_ZIP_KINDS = {
    DocumentKind.DOCX: "the .docx (Word) document", DocumentKind.PPTX: "the .pptx (PowerPoint) document",
    DocumentKind.XLSX: "the .xlsx (Excel) workbook", DocumentKind.ODT: "the .odt document",
    DocumentKind.ODP: "the .odp presentation", DocumentKind.ODS: "the .ods spreadsheet",
    DocumentKind.EPUB: "the EPUB e-book",
}
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read(path: str | os.PathLike[str], options: ParseOptions, limits: Limits | None = None) -> Document:
    """Sniff and parse the file at `path` as `options` ask: what a worker runs per document.

    Raises `SensoriumError` as `parse` does, and UNSUPPORTED_TYPE (with the sniff's sentence)
    for a file of no format the engine reads.
    """
    path = os.fspath(path)
    name = options.name or path
    kind = options.kind
    if kind is None:
        with open(path, "rb") as handle:
            verdict = sniff(handle.read(HEAD_BYTES), path, name=name)
        if verdict.kind is None:
            raise SensoriumError(verdict.reason or Reason.UNSUPPORTED_TYPE, verdict.message)
        kind = verdict.kind
    document = parse(path, kind, limits, name=name, attached=options.attached)
    if not options.pictures and document.pictures:
        document = dataclasses.replace(document, pictures=())
    if not options.attachments and document.attachments:
        document = dataclasses.replace(document, attachments=())
    return document


def parse(path: str | os.PathLike[str], kind: DocumentKind, limits: Limits | None = None,
          *, name: str = "", attached: bool = False) -> Document:
    """Parse the file at `path` as `kind` (from `sniff.sniff`).

    `name` is the path the index shows for the file (default: `path`): attachments of a mail
    get paths under it ("mail.eml!/report.docx"). A mail that is `attached` to another passes
    no attachments on (one level deep): they are listed with an error.

    Raises `SensoriumError` for a file that yields nothing: DOCUMENT_UNREADABLE (damaged,
    truncated), DOCUMENT_ENCRYPTED, DOCUMENT_UNSAFE (bombs, XML entities), INPUT_EMPTY, and
    UNSUPPORTED_TYPE for legacy Office where LibreOffice is not installed.
    """
    path = os.fspath(path)
    limits = limits or Limits()
    name = name or path
    if os.path.getsize(path) == 0:
        raise SensoriumError(Reason.INPUT_EMPTY, "the file is empty")
    builder = Builder(limits)
    metadata, page_count, converted = Metadata(), 0, ""
    extra: dict[str, str] = {}
    try:
        if kind in LEGACY_KINDS:
            with tempfile.TemporaryDirectory(prefix="sensorium-convert-") as workdir:
                target = legacy.convert(path, kind, workdir, limits.convert_timeout_seconds, limits.soffice)
                metadata, page_count = _parse_zip(target, DocumentKind(legacy.TARGETS[kind]), builder)
                converted = "libreoffice"
        elif kind in _ZIP_KINDS:
            metadata, page_count = _parse_zip(path, kind, builder)
        elif kind is DocumentKind.EML:
            metadata, extra = parse_eml(path, name, builder, nested=attached)
        elif kind is DocumentKind.MSG:
            metadata, extra = parse_msg(path, name, builder, nested=attached)
        elif kind is DocumentKind.RTF:
            from sensorium.document.rtf import parse_rtf

            metadata = parse_rtf(path, builder)
        elif kind is DocumentKind.HTML:
            metadata = _read_html(path, builder)
        else:
            metadata = text.parse_text(path, kind, builder)
    except DocumentTooLong:
        builder.errors.append(builder.budget.document_error())
    except (SensoriumError, MemoryError):
        raise
    except RecursionError:
        raise guards.unsafe("the document is nested too deeply to read") from None
    except Exception as error:  # the libraries' own exceptions on damaged files are many
        log.warning("%s could not be parsed as %s: %s: %s", name, kind.value, type(error).__name__, error,
                    exc_info=True)
        raise guards.unreadable(
            f"the file could not be read as {kind.value} ({type(error).__name__}); it is damaged, "
            "truncated or not that format"
        ) from None
    return Document(
        kind=kind, metadata=metadata, sections=tuple(builder.sections), pictures=tuple(builder.pictures),
        attachments=tuple(builder.attachments), errors=tuple(builder.finish_errors()),
        page_count=page_count, converted_with=converted, extra=extra,
    )


def _parse_zip(path: str, kind: DocumentKind, builder: Builder) -> tuple[Metadata, int]:
    what = _ZIP_KINDS[kind]
    with open(path, "rb") as handle:
        if handle.read(8) == _OLE_MAGIC:
            # Office keeps a password-protected .docx/.xlsx/.pptx in an OLE2 file
            # (EncryptionInfo + EncryptedPackage streams).
            raise guards.encrypted(what)
    with guards.open_zip(path, builder.limits, what) as archive:
        parsers: dict[DocumentKind, Callable[[], tuple[Metadata, int]]] = {
            DocumentKind.DOCX: lambda: office.parse_docx(path, builder),
            DocumentKind.PPTX: lambda: office.parse_pptx(path, builder),
            DocumentKind.XLSX: lambda: office.parse_xlsx(path, builder, archive),
            DocumentKind.EPUB: lambda: (_epub(path, builder, archive), 0),
        }
        if kind in parsers:
            return parsers[kind]()
        return opendocument.parse(path, kind, builder, archive)


def _epub(path: str, builder: Builder, archive: zipfile.ZipFile) -> Metadata:
    from sensorium.document.ebook import parse_epub

    names = set(archive.namelist())
    encryption = archive.read("META-INF/encryption.xml") if "META-INF/encryption.xml" in names else b""
    return parse_epub(path, builder, names, encryption)


def _read_html(path: str, builder: Builder) -> Metadata:
    from sensorium.document.sniff import HEAD_BYTES, detect_encoding

    size = os.path.getsize(path)
    # An HTML parser needs the whole page; a page bigger than what the budget could ever keep
    # (4 bytes a character at most) is cut there.
    cap = 4 * builder.limits.max_document_chars + HEAD_BYTES
    with open(path, "rb") as handle:
        data = handle.read(min(size, cap))
    encoding = detect_encoding(data[:HEAD_BYTES]) or "utf-8"
    return markup.parse_html(data.decode(encoding, errors="replace"), builder)
