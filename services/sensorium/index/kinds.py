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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sensorium.errors import Reason, SensoriumError
from sensorium.index.chunking import TextChunk, chunk_page, transcript_stretches, window_transcript
from sensorium.index.layout import OptionValue, Passage, Row

if TYPE_CHECKING:
    from sensorium.contract import E, EngineKey
    from sensorium.settings import Settings

log = logging.getLogger("sensorium.index")


class EngineSource(Protocol):
    """What a producer opens engines from (`sensorium.engines.Engines`; named here by its one
    method, so the kind table does not sit above the seam and the services built on it)."""

    async def open(self, key: EngineKey[E]) -> E: ...


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
    settings: Settings
    context_length: int
    """Tokens the embedding model reads: every text row must fit."""

    @property
    def engines(self) -> EngineSource:
        """Where the producer opens the engines it needs (`work.engines.open(PDF)`)."""
        ...

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

    def cut_at_limit(self, error: SensoriumError) -> None:
        """The engine cut the file's text at a limit (`error`, PROCESSING_LIMIT): the file stays
        indexed and its files-table entry says what is missing (the first such note)."""
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

    def add_passages(self, passages: Sequence[Passage]) -> list[int]:
        """Hand the writer the file's passages (its pages, slides, sections, stretches of a
        transcript: what full-text search ranks); their ordinals, for the rows made from them
        (`Row.passage`). Add a passage before its rows."""
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
            # A page is a passage: full-text search ranks whole pages, the vector side chunks.
            texts = [page for page in pages if page.text.strip()]
            ordinals = dict(zip((page.page_number for page in texts), work.add_passages(
                [Passage("pdf_text", page.text, page=page.page_number) for page in texts]), strict=True))
            chunks = (await asyncio.to_thread(_chunk_pages, work, pages))[:work.rows_left() + 1]
            images = [item for item in items if isinstance(item, ImageResult) and item.error is None
                      and item.data and min(item.width, item.height) >= min_side]
            images = images[:max(0, work.rows_left() + 1 - len(chunks))]
            for item in items:
                if item.error is not None:
                    log.info("part of a PDF not indexed", extra={
                        "path": str(work.path), "page": item.page_number, "reason": item.error.reason.name,
                        "detail": item.error.message})
                if isinstance(item, PageResult) and item.limit is not None:
                    work.cut_at_limit(item.limit)
            text_vectors, image_vectors = await asyncio.gather(
                work.embed_texts([c.text for c in chunks]), work.embed_images([i.data for i in images]))
            rows = [Row("pdf_text", v, text=c.text, page=c.page, bbox=c.bbox, passage=ordinals.get(c.page))
                    for c, v in zip(chunks, text_vectors, strict=True) if v is not None]
            rows += [Row("pdf_image", v, page=i.page_number,
                         bbox=None if i.bbox is None else (i.bbox.x0, i.bbox.y0, i.bbox.x1, i.bbox.y1),
                         passage=ordinals.get(i.page_number))
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
    await _add_transcript(work, await _transcribe(work))


async def _transcribe(work: FileWork) -> list[Any]:
    """The file's transcript segments (`sensorium.transcription.api.Segment`)."""
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
    return segments


async def _add_transcript(work: FileWork, segments: Sequence[Any],
                          taken_at: datetime | None = None) -> None:
    """A transcript's passages and rows. Stretches of the transcript are its passages (what
    full-text search ranks); the windows the vector side embeds are cut inside them, so each
    row lies in one passage."""
    stretches = transcript_stretches(segments)
    ordinals = work.add_passages([Passage("audio", s.text, start_seconds=s.start_seconds,
                                          end_seconds=s.end_seconds) for s in stretches])
    windows = [(ordinal, window) for ordinal, stretch in zip(ordinals, stretches, strict=True)
               for window in await asyncio.to_thread(
                   window_transcript, stretch.segments, count_tokens=work.count_tokens,
                   context_length=work.context_length)][:work.rows_left() + 1]
    vectors = await work.embed_texts([w.text for _, w in windows])
    work.add([Row("audio", v, text=w.text, start_seconds=w.start_seconds, end_seconds=w.end_seconds,
                  passage=ordinal, taken_at=taken_at)
              for (ordinal, w), v in zip(windows, vectors, strict=True) if v is not None])


# HEIF major brands (ISO/IEC 23008-12) of still images: filetype knows "heic" (and "mif1"/"msf1"
# listing it) but not "heix" (10-bit: some iPhones, Canon cameras) or "heim"/"heis". Image
# sequences ("hevc"/"hevx") are left to filetype: they may hold no still image.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis"})


def _is_heif(head: bytes, path: Path | None = None) -> str | None:
    return "image/heic" if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS else None


PREVIEW_SIDE = 448
"""Shorter side of the reduced image the media service hands back for CLIP (models read
224-448 pixels): the file is decoded once, at a reduced scale, for the text check and CLIP."""


def _image_options(settings: Settings) -> dict[str, OptionValue]:
    media = settings.media
    return {"image_preview_side": PREVIEW_SIDE, "image_ocr": media.ocr,
            "image_photo_check_side": media.photo_check_side, "image_read_side": media.read_side,
            "image_min_confidence": media.min_confidence}


async def _index_image(work: FileWork) -> None:
    from sensorium.media.api import MEDIA, ImageTextOptions

    media = await work.engines.open(MEDIA)
    found = await media.read_image_text(
        work.path, ImageTextOptions(read_text=work.settings.media.ocr, preview_side=PREVIEW_SIDE))
    taken_at = stored_time(found.taken_at)
    passage: int | None = None
    chunks: list[TextChunk] = []
    if found.lines:
        # The image's whole text is its passage (what full-text search ranks: a screenshot is
        # one unit to a person); the vector side embeds chunks of consecutive lines inside it.
        (passage,) = work.add_passages([Passage("image_text", found.text)])
        chunks = (await asyncio.to_thread(_chunk_lines, work, found.lines))[:work.rows_left()]
    vector, text_vectors = await asyncio.gather(
        work.embed_image(found.preview), work.embed_texts([c.text for c in chunks]))
    rows = [Row("image", vector, taken_at=taken_at)]
    rows += [Row("image_text", v, text=c.text, bbox=c.bbox, taken_at=taken_at, passage=passage)
             for c, v in zip(chunks, text_vectors, strict=True) if v is not None]
    work.add(rows)


@dataclass(frozen=True)
class _Line:
    """A recognised line as the chunker takes a block (`chunking.BlockLike`)."""

    bbox: Any
    text: str


def _chunk_lines(work: FileWork, lines: Sequence[Any]) -> list[TextChunk]:
    """An image's text lines (in reading order) packed into chunks that fit the model, each
    with the box around its lines: consecutive lines together, as a PDF page's blocks are."""
    return chunk_page(0, [_Line(line.box, line.text) for line in lines], count_tokens=work.count_tokens,
                      context_length=work.context_length,
                      overlap_tokens=work.settings.index.chunk_overlap_tokens)


def stored_time(when: datetime | None) -> datetime | None:
    """A capture time as the index stores it (UTC): an aware time as its instant; a naive one
    (EXIF without an offset: the camera's clock in a zone the file does not name) as that
    clock reading written as UTC, so its date and hour are the ones the camera showed
    (docs/index.md)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def _video_options(settings: Settings) -> dict[str, OptionValue]:
    media = settings.media
    return {"video_frame_interval_seconds": media.frame_interval_seconds,
            "video_max_frames": media.max_frames_per_video, "video_frame_max_side": media.frame_max_side,
            "video_scene_threshold": media.scene_threshold, **_audio_options(settings)}


async def _index_video(work: FileWork) -> None:
    """Frames at scene changes and the sound track's transcript, decoded side by side. A file
    without a video track is indexed by its sound alone, one without sound by its frames; a
    sound track that fails is logged and the frames stand (partial results beat none)."""
    from sensorium.media.api import MEDIA, VideoOptions

    media = await work.engines.open(MEDIA)
    frames = asyncio.ensure_future(media.extract_frames(work.path, VideoOptions()))
    speech = asyncio.ensure_future(_transcribe(work))
    try:
        try:
            video = await frames
        except SensoriumError as error:
            if error.metadata.get("missing_track") != "video":
                raise
            video = None
        try:
            segments = await speech
        except SensoriumError as error:
            if video is None:
                raise  # neither pictures nor sound
            if error.metadata.get("missing_track") != "audio":
                log.info("a video's sound track not indexed", extra={
                    "path": str(work.path), "reason": error.reason.name, "detail": error.message})
            segments = []
    finally:
        for task in (frames, speech):
            task.cancel()
        await asyncio.gather(frames, speech, return_exceptions=True)
    taken_at = stored_time(video.taken_at) if video is not None else None
    if video is not None:
        times = [frame.seconds for frame in video.frames]
        ends = [*times[1:], max(video.decoded_seconds, times[-1])]
        chosen = video.frames[:work.rows_left() + 1]
        vectors = await work.embed_images([frame.jpeg for frame in chosen])
        work.add([Row("video_frame", v, start_seconds=frame.seconds, end_seconds=end, taken_at=taken_at)
                  for frame, end, v in zip(chosen, ends, vectors, strict=False) if v is not None])
    await _add_transcript(work, segments, taken_at)


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
        if error.reason is Reason.PROCESSING_LIMIT:  # text past a limit: the files table says so
            work.cut_at_limit(error)
    title, author = document.metadata.title or None, document.metadata.author or None
    sections = [section for section in document.sections if section.text or section.error]
    # A picture's passage: the first passage at its page and section, as a PDF image's is its page's.
    passages_at: dict[tuple[int | None, str | None], int] = {}
    for start in range(0, len(sections), SECTIONS_PER_STEP):
        step = sections[start:start + SECTIONS_PER_STEP]
        for section in step:
            if section.error is not None:
                log.info("part of a document not indexed", extra={
                    "path": work.name, "where": section.locator.describe(),
                    "reason": section.error.reason.name, "detail": section.error.message})
                if section.error.reason is Reason.PROCESSING_LIMIT:
                    work.cut_at_limit(section.error)
        units = _section_passages([s for s in step if s.text])
        ordinals = work.add_passages([passage for passage, _ in units])
        for passage, ordinal in zip((p for p, _ in units), ordinals, strict=True):
            passages_at.setdefault((passage.page, passage.section), ordinal)
        pieces = await asyncio.to_thread(_section_pieces, work, units, ordinals)
        pieces = pieces[:work.rows_left() + 1]  # one past the cap: `add` then says it was reached
        vectors = await work.embed_texts([text for text, _where in pieces])
        work.add([Row("document_text", vector, text=text, title=title, author=author, **where)
                  for (text, where), vector in zip(pieces, vectors, strict=True) if vector is not None])
    min_side = work.settings.index.min_image_side
    pictures = [picture for picture in document.pictures if picture.error is None and picture.data
                and min(picture.width, picture.height) >= min_side][:work.rows_left() + 1]
    vectors = await work.embed_images([picture.data for picture in pictures])
    rows = []
    for picture, vector in zip(pictures, vectors, strict=True):
        if vector is None:
            continue
        page, where = picture.locator.page or None, _section_of(picture.locator) or None
        rows.append(Row("document_image", vector, page=page, section=where, title=title, author=author,
                        passage=passages_at.get((page, where))))
    work.add(rows)
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


def _section_passages(sections: Sequence[Any]) -> list[tuple[Passage, Any]]:
    """A document's passages (what full-text search ranks), each with what its rows are cut
    from: a section (page, slide, sheet range, heading's section) is one passage, with its
    locator; subtitle cues are grouped into stretches as a transcript's segments are."""
    units: list[tuple[Passage, Any]] = []
    cues = [_Cue(s.locator.start_seconds,
                 s.locator.end_seconds if s.locator.end_seconds is not None else s.locator.start_seconds,
                 s.text) for s in sections if s.locator.start_seconds is not None]
    for stretch in transcript_stretches(cues):
        units.append((Passage("document_text", stretch.text, start_seconds=stretch.start_seconds,
                              end_seconds=stretch.end_seconds), stretch))
    for section in sections:
        locator = section.locator
        if locator.start_seconds is not None:
            continue
        units.append((Passage("document_text", section.text, page=locator.page or None,
                              section=_section_of(locator) or None), section))
    return units


def _section_pieces(work: FileWork, units: Sequence[tuple[Passage, Any]],
                    ordinals: Sequence[int]) -> list[tuple[str, dict[str, Any]]]:
    """The text of each row the passages make, with its locator columns and its passage:
    subtitle stretches windowed as transcripts are, other sections cut into chunks as PDF pages
    are; every row lies inside one passage."""
    pieces: list[tuple[str, dict[str, Any]]] = []
    overlap = work.settings.index.chunk_overlap_tokens
    for (passage, source), ordinal in zip(units, ordinals, strict=True):
        if passage.start_seconds is not None:
            windows = window_transcript(source.segments, count_tokens=work.count_tokens,
                                        context_length=work.context_length)
            pieces += [(w.text, {"start_seconds": w.start_seconds, "end_seconds": w.end_seconds,
                                 "passage": ordinal}) for w in windows]
            continue
        locator = source.locator
        chunks = chunk_page(locator.page, [], text=source.text, count_tokens=work.count_tokens,
                            context_length=work.context_length, overlap_tokens=overlap)
        where = {"page": passage.page, "section": passage.section, "cells": locator.cells or None,
                 "passage": ordinal}
        pieces += [(chunk.text, where) for chunk in chunks]
    return pieces


class ModelMismatch(Exception):
    """The engines' model is not the one the index records: the job cannot go on."""


AUDIO_ROWS = {"audio": "a window of a recording's transcript (start and end seconds)"}

KINDS: dict[str, FileKind] = {
    "pdf": FileKind(
        "pdf", "PDF", {
            "pdf_text": "a chunk of a PDF page's text (page, bbox of its blocks)",
            "pdf_image": "an image embedded in a PDF page (page, bbox)",
        },
        _index_pdf, services=("pdf",), sniff=_is_pdf, options=_pdf_options,
    ),
    "audio": FileKind(
        "audio", "audio", AUDIO_ROWS, _index_audio, services=("transcription",),
        options=_audio_options,
        # Sound-only containers PyAV decodes.
        mimes=frozenset({"audio/x-wav", "audio/mpeg", "audio/x-flac", "audio/ogg", "audio/mp4",
                         "audio/aac", "audio/x-aiff"}),
    ),
    "image": FileKind(
        "image", "image", {
            "image": "an image file (taken_at: its EXIF capture time)",
            "image_text": "text read in an image file: consecutive lines as fit the model (bbox "
                          "around them in pixels)",
        },
        _index_image, services=("media",), sniff=_is_heif, options=_image_options,
        # What the media service decodes: Pillow's own formats, AVIF (Pillow >= 11.3) and
        # HEIC/HEIF, what iPhones write (pillow-heif, the `media` extra).
        mimes=frozenset({"image/jpeg", "image/png", "image/apng", "image/gif", "image/webp",
                         "image/tiff", "image/bmp", "image/heic", "image/avif"}),
    ),
    "video": FileKind(
        "video", "video files", {
            "video_frame": "a video frame at a scene change or interval (start and end seconds)",
            **AUDIO_ROWS,  # the sound track's transcript: found by the same queries as recordings
        },
        _index_video, services=("media", "transcription"), options=_video_options,
        # Containers PyAV decodes that carry pictures (a sound-only one is transcribed alone).
        mimes=frozenset({"video/mp4", "video/x-m4v", "video/quicktime", "video/webm",
                         "video/x-matroska", "video/x-msvideo", "video/mpeg", "video/x-flv",
                         "video/3gpp", "video/x-ms-wmv"}),
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
    """Add a kind to the table (see docs/architecture.md). Its name must be new; a row kind it
    shares with another kind must mean the same there (the same description), as a video's
    transcript rows are `audio` rows."""
    if kind.name in KINDS:
        raise ValueError(f"a file kind named {kind.name!r} is registered already")
    known = row_kinds()
    taken = {name for name, summary in kind.rows.items() if name in known and known[name] != summary}
    if taken:
        raise ValueError(f"row kind(s) {', '.join(sorted(taken))} are registered already, "
                         "with another meaning")
    KINDS[kind.name] = kind


def row_kinds() -> dict[str, str]:
    """Every row kind of the table, with what such a row holds (a kind shared by two file
    kinds once)."""
    return {name: summary for kind in KINDS.values() for name, summary in kind.rows.items()}


def services_needed() -> set[str]:
    """The services the kinds' producers use, and embedding (the job orders them as the
    registry does: `sensorium.index.job.job_services`)."""
    return {"embedding", *(service for kind in KINDS.values() for service in kind.services)}


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
