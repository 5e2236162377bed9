"""The kind table: every kind of file the index job reads, and the rows it makes of it.

Each `FileKind` row says how a file of the kind is recognised (its MIME types as `filetype`
names them, or a content check of its own), which engines it needs, which options shape its
rows (they go into the index's manifest), which row kinds it yields, and the function that
makes them. Sniffing (`sniff.py`), the job's dispatch and services (`job.py`, `pipeline.py`),
the manifest and `sensorium search --kind` all derive from this table; `register` adds a row
(see docs/architecture.md).

A producer gets a `FileWork`: the file, the engines (in-process or remote), and the pipeline's
helpers that chunk, embed and hand rows to the writer. It raises `SensoriumError` for a file
that cannot be indexed (a row of the files table: UNSUPPORTED_TYPE makes it `skipped`, any
other reason an `error`). A producer that finds files inside its file (a mail's attachments)
hands each to `FileWork.add_inner_file`: it is indexed as a file of its own, at
`<file>!/<name>`, one level deep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sensorium.errors import Reason
from sensorium.index.chunking import TextChunk, chunk_page, window_transcript
from sensorium.index.layout import OptionValue, Row

if TYPE_CHECKING:
    from sensorium.engines import Engines
    from sensorium.errors import SensoriumError
    from sensorium.settings import Settings

log = logging.getLogger("sensorium.index")


class FileWork(Protocol):
    """One file as a producer sees it (the pipeline implements it)."""

    path: Path
    """Where the file's bytes are (for a file inside another, a temporary copy)."""
    name: str
    """The file's path as the index records it: `path`, or `<file>!/<name>` for a file inside
    another."""
    mime: str
    """The MIME type the sniff found (the kind's `sniff` or `filetype`)."""
    inner: bool
    """The file is inside another (an attachment): files inside it are not indexed."""
    engines: Engines
    settings: Settings
    context_length: int
    """Tokens the embedding model reads: every text row must fit."""

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the embedding model counts them (blocking; use a thread)."""
        ...

    async def embed_texts(self, texts: Sequence[str]) -> list[Any]:
        """Each text's vector, or None for one that failed alone (logged)."""
        ...

    async def embed_images(self, images: Sequence[bytes]) -> list[Any]:
        """Each image's vector, or None for one that failed alone (logged)."""
        ...

    async def embed_image(self, image: bytes) -> Any:
        """The vector of an image that is the whole file: its error is the file's (raised)."""
        ...

    def add(self, rows: Sequence[Row]) -> None:
        """Hand rows to the writer (each of a row kind the file's kind declares). Past the
        per-file cap (SENSORIUM_INDEX__MAX_ROWS_PER_FILE) the rest are dropped and the producer
        is stopped; the file is indexed with the rows it has, and its entry says so."""
        ...

    def rows_left(self) -> int:
        """Rows this file may still add: producers cut their pieces to it before embedding."""
        ...

    async def add_inner_file(self, name: str, data: bytes, error: SensoriumError | None = None) -> None:
        """Index `data`, a file found inside this one (a mail's attachment called `name`), as a
        file of its own at `<this file>!/<name>`: sniffed, produced by its kind, recorded in the
        files table; `error` records it as not indexed, for that reason. Inside a file that is
        itself inner, it is recorded as nested too deep (one level only)."""
        ...


@dataclass(frozen=True)
class Refusal:
    """What a kind's content check says about a file it does not claim but recognises: why it
    is not indexed (e.g. "a zip archive, not an Office document"). It stands only when no other
    kind claims the file."""

    reason: Reason
    message: str


Producer = Callable[[FileWork], Awaitable[None]]
Sniff = Callable[[bytes, "Path | None"], "str | Refusal | None"]
Options = Callable[["Settings"], dict[str, OptionValue]]


@dataclass(frozen=True)
class FileKind:
    """One kind of file: how it is recognised and what rows it gives (see the module docstring)."""

    name: str
    """The files table's `kind`, e.g. "pdf"."""
    summary: str
    """What it is, for messages ("PDF", "audio", "image files")."""
    rows: Mapping[str, str]
    """Row kinds it yields, each with what such a row holds (docs/index.md)."""
    produce: Producer
    services: tuple[str, ...] = ()
    """Services it needs besides embedding (started only when a file of the kind comes)."""
    mimes: frozenset[str] = frozenset()
    """MIME types, as `filetype` names them, that are this kind."""
    sniff: Sniff | None = None
    """A content check of its own, tried before `filetype`: the MIME type it finds in a file's
    first bytes (`sniff.HEAD_BYTES`) and, where it needs more (a zip's directory), the file at
    the path (None when there is no file); None when the file is not of this kind, or a
    `Refusal` saying why it is recognised but not indexed."""
    options: Options | None = None
    """The settings that shape its rows, for the manifest: an index never mixes rows made
    with different values."""
    fallback: bool = False
    """Its check is tried last, after every other kind's and `filetype`'s: it claims files by
    a weaker sign than a signature (documents: whatever decodes as text), so a format with a
    signature of its own must be recognised first."""


# --- the built-in kinds ----------------------------------------------------------------------


def _pdf_options(settings: Settings) -> dict[str, OptionValue]:
    return {"min_image_side": settings.index.min_image_side, "ocr": settings.pdf.ocr,
            "ocr_language": settings.pdf.ocr_language}


def _is_pdf(head: bytes, path: Path | None = None) -> str | None:
    # As the PDF service accepts them: `%PDF-` within the first 1024 bytes, as Acrobat requires.
    return "application/pdf" if b"%PDF-" in head[:1024] else None


async def _index_pdf(work: FileWork) -> None:
    from sensorium.pdf.api import PDF, ExtractOptions, ImageResult, PageResult

    # Blocks give chunks their boxes; images become rows; OCR as the PDF service does it.
    options = ExtractOptions(include_blocks=True, include_images=True, ocr=True)
    min_side = work.settings.index.min_image_side
    pdf = await work.engines.open(PDF)
    results = pdf.extract(work.path, options)
    async with contextlib.aclosing(results):
        async for items in results:
            if not isinstance(items, list):
                continue  # the document's info
            pages = [item for item in items if isinstance(item, PageResult) and item.error is None]
            chunks = (await asyncio.to_thread(_chunk_pages, work, pages))[:work.rows_left() + 1]
            images = [item for item in items if isinstance(item, ImageResult) and item.error is None
                      and item.data and min(item.width, item.height) >= min_side]
            images = images[:max(0, work.rows_left() + 1 - len(chunks))]
            for item in items:
                if item.error is not None:
                    log.info("part of a PDF not indexed", extra={
                        "path": str(work.path), "page": item.page_number, "reason": item.error.reason.name,
                        "detail": item.error.message})
            text_vectors, image_vectors = await asyncio.gather(
                work.embed_texts([c.text for c in chunks]), work.embed_images([i.data for i in images]))
            rows = [Row("pdf_text", v, text=c.text, page=c.page, bbox=c.bbox)
                    for c, v in zip(chunks, text_vectors, strict=True) if v is not None]
            rows += [Row("pdf_image", v, page=i.page_number,
                         bbox=None if i.bbox is None else (i.bbox.x0, i.bbox.y0, i.bbox.x1, i.bbox.y1))
                     for i, v in zip(images, image_vectors, strict=True) if v is not None]
            work.add(rows)


def _chunk_pages(work: FileWork, pages: Sequence[Any]) -> list[TextChunk]:
    overlap = work.settings.index.chunk_overlap_tokens
    return [chunk for page in pages for chunk in chunk_page(
        page.page_number, page.blocks, text=page.text, count_tokens=work.count_tokens,
        context_length=work.context_length, overlap_tokens=overlap)]


def _audio_options(settings: Settings) -> dict[str, OptionValue]:
    return {"transcription_model": settings.transcription.model}


async def _index_audio(work: FileWork) -> None:
    from sensorium.transcription.api import TRANSCRIPTION, Info, RequestedOptions, Segment

    transcription = await work.engines.open(TRANSCRIPTION)
    model, segments = "", []
    pieces = transcription.transcribe_file(work.path, RequestedOptions())
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            if isinstance(piece, Info):
                model = piece.model
            elif isinstance(piece, Segment):
                segments.append(piece)
    expected = work.settings.transcription.model
    if model and model != expected:
        raise ModelMismatch(
            f"the transcripts come from {model} but the index records {expected} "
            "(SENSORIUM_TRANSCRIPTION__MODEL): set it as the server has it")
    windows = await asyncio.to_thread(window_transcript, segments, count_tokens=work.count_tokens,
                                      context_length=work.context_length)
    windows = windows[:work.rows_left() + 1]
    vectors = await work.embed_texts([w.text for w in windows])
    work.add([Row("audio", v, text=w.text, start_seconds=w.start_seconds, end_seconds=w.end_seconds)
              for w, v in zip(windows, vectors, strict=True) if v is not None])


async def _index_image(work: FileWork) -> None:
    data = await asyncio.to_thread(work.path.read_bytes)
    work.add([Row("image", await work.embed_image(data))])


def _document_options(settings: Settings) -> dict[str, OptionValue]:
    return {"min_image_side": settings.index.min_image_side,
            "max_chars_per_page": settings.text.max_chars_per_page,
            "max_chars_per_document": settings.text.max_chars_per_document}


def _is_document(head: bytes, path: Path | None = None) -> str | Refusal | None:
    from sensorium.document.sniff import MIME_TYPES, sniff

    verdict = sniff(head, path)
    if verdict.kind is not None:
        return MIME_TYPES[verdict.kind]
    if verdict.reason is None or verdict.reason is Reason.INPUT_EMPTY:
        return None
    return Refusal(verdict.reason, verdict.message)


SECTIONS_PER_STEP = 256
"""Sections chunked and embedded together: a long document's rows go to the writer as they are
made, and its chunks and vectors are never all held at once."""


@dataclass(frozen=True)
class _Cue:
    """A subtitle cue as the transcript windowing reads it."""

    start: float
    end: float
    text: str


async def _index_document(work: FileWork) -> None:
    from sensorium.document.api import DOCUMENT, ParseOptions
    from sensorium.document.sniff import KINDS_BY_MIME

    document_engine = await work.engines.open(DOCUMENT)
    options = ParseOptions(name=work.name, kind=KINDS_BY_MIME.get(work.mime), pictures=True,
                           attachments=True, attached=work.inner)
    document = await document_engine.parse(work.path, options)
    for error in document.errors:
        log.info("part of a document not indexed", extra={
            "path": work.name, "reason": error.reason.name, "detail": error.message})
    title, author = document.metadata.title or None, document.metadata.author or None
    sections = [section for section in document.sections if section.text or section.error]
    for start in range(0, len(sections), SECTIONS_PER_STEP):
        step = sections[start:start + SECTIONS_PER_STEP]
        for section in step:
            if section.error is not None:
                log.info("part of a document not indexed", extra={
                    "path": work.name, "where": section.locator.describe(),
                    "reason": section.error.reason.name, "detail": section.error.message})
        pieces = await asyncio.to_thread(_section_pieces, work, [s for s in step if s.text])
        pieces = pieces[:work.rows_left() + 1]  # one past the cap: `add` then says it was reached
        vectors = await work.embed_texts([text for text, _where in pieces])
        work.add([Row("document_text", vector, text=text, title=title, author=author, **where)
                  for (text, where), vector in zip(pieces, vectors, strict=True) if vector is not None])
    min_side = work.settings.index.min_image_side
    pictures = [picture for picture in document.pictures if picture.error is None and picture.data
                and min(picture.width, picture.height) >= min_side][:work.rows_left() + 1]
    vectors = await work.embed_images([picture.data for picture in pictures])
    work.add([Row("document_image", vector, page=picture.locator.page or None,
                  section=_section_of(picture.locator) or None, title=title, author=author)
              for picture, vector in zip(pictures, vectors, strict=True) if vector is not None])
    for attachment in document.attachments:
        await work.add_inner_file(attachment.name, attachment.data, attachment.error)


def _section_of(locator: Any) -> str:
    """A document locator's place beyond page and cells, for the `section` column: the heading
    path, else the slide's title, the sheet's name, or the line a text section starts at."""
    if locator.headings:
        return " > ".join(locator.headings)
    if locator.title or locator.sheet:
        return str(locator.title or locator.sheet)
    return f"line {locator.line}" if locator.line else ""


def _section_pieces(work: FileWork, sections: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
    """The text of each row the sections make, with its locator columns: subtitle cues packed
    into windows as transcripts are, other sections cut into chunks as PDF pages are."""
    pieces: list[tuple[str, dict[str, Any]]] = []
    overlap = work.settings.index.chunk_overlap_tokens
    cues = [s for s in sections if s.locator.start_seconds is not None]
    if cues:
        timed = [_Cue(s.locator.start_seconds, s.locator.end_seconds if s.locator.end_seconds is not None
                      else s.locator.start_seconds, s.text) for s in cues]
        windows = window_transcript(timed, count_tokens=work.count_tokens, context_length=work.context_length)
        pieces += [(w.text, {"start_seconds": w.start_seconds, "end_seconds": w.end_seconds})
                   for w in windows]
    for section in sections:
        if section.locator.start_seconds is not None:
            continue
        locator = section.locator
        chunks = chunk_page(locator.page, [], text=section.text, count_tokens=work.count_tokens,
                            context_length=work.context_length, overlap_tokens=overlap)
        where = {"page": locator.page or None, "section": _section_of(locator) or None,
                 "cells": locator.cells or None}
        pieces += [(chunk.text, where) for chunk in chunks]
    return pieces


class ModelMismatch(Exception):
    """The engines' model is not the one the index records: the job cannot go on."""


KINDS: dict[str, FileKind] = {
    "pdf": FileKind(
        "pdf", "PDF", {
            "pdf_text": "a chunk of a PDF page's text (page, bbox of its blocks)",
            "pdf_image": "an image embedded in a PDF page (page, bbox)",
        },
        _index_pdf, services=("pdf",), sniff=_is_pdf, options=_pdf_options,
    ),
    "audio": FileKind(
        "audio", "audio", {"audio": "a window of a recording's transcript (start and end seconds)"},
        _index_audio, services=("transcription",), options=_audio_options,
        # Containers PyAV decodes that carry sound; video counts as audio: its sound track is
        # what the job transcribes.
        mimes=frozenset({"audio/x-wav", "audio/mpeg", "audio/x-flac", "audio/ogg", "audio/mp4",
                         "audio/aac", "audio/x-aiff", "video/mp4", "video/x-m4v", "video/quicktime",
                         "video/webm", "video/x-matroska"}),
    ),
    "image": FileKind(
        "image", "image files", {"image": "an image file"}, _index_image,
        # What Pillow decodes without plugins and the embedding service accepts.
        mimes=frozenset({"image/jpeg", "image/png", "image/apng", "image/gif", "image/webp",
                         "image/tiff", "image/bmp"}),
    ),
    "document": FileKind(
        "document", "documents", {
            "document_text": "a chunk of a document's section: page (or slide), section (heading "
                             "path, slide title, sheet name or line), cells (spreadsheets), start and "
                             "end seconds (subtitles), the document's title and author",
            "document_image": "a picture inside a document (page, section, title, author)",
        },
        _index_document, services=("document",), sniff=_is_document, options=_document_options,
        # Tried last: documents are claimed by decoding as text, a weaker sign than a signature.
        fallback=True,
    ),
}


def register(kind: FileKind) -> None:
    """Add a kind to the table (see docs/architecture.md). Its name and row kinds must be new."""
    if kind.name in KINDS:
        raise ValueError(f"a file kind named {kind.name!r} is registered already")
    taken = set(kind.rows) & set(row_kinds())
    if taken:
        raise ValueError(f"row kind(s) {', '.join(sorted(taken))} are registered already")
    KINDS[kind.name] = kind


def row_kinds() -> dict[str, str]:
    """Every row kind of the table, with what such a row holds."""
    return {name: summary for kind in KINDS.values() for name, summary in kind.rows.items()}


def job_services() -> list[str]:
    """The services the index job runs: every kind's, and embedding, in the registry's order."""
    from sensorium.registry import SERVICES

    wanted = {"embedding", *(service for kind in KINDS.values() for service in kind.services)}
    return [name for name in SERVICES if name in wanted]


def manifest_options(settings: Settings) -> dict[str, OptionValue]:
    """Every kind's row-shaping options (the job adds the chunking's own)."""
    options: dict[str, OptionValue] = {}
    for kind in KINDS.values():
        if kind.options is not None:
            options.update(kind.options(settings))
    return options


def described() -> str:
    """The kinds, for a message: "PDF, audio and image files"."""
    names = [kind.summary for kind in KINDS.values()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
