"""The kind table: every kind of file the index job reads, and the rows it makes of it.

Each `FileKind` row says how a file of the kind is recognised (its MIME types as `filetype`
names them, or a content check of its own), which engines it needs, which options shape its
rows (they go into the index's manifest), which row kinds it yields, and the function that
makes them. Sniffing (`sniff.py`), the job's dispatch and services (`job.py`, `pipeline.py`),
the manifest and `sensorium search --kind` all derive from this table; `register` adds a row
(see docs/architecture.md).

A producer gets a `FileWork`: the file, the engines (in-process or remote), and the pipeline's
helpers that chunk, embed and hand rows to the writer. It raises `SensoriumError` for a file
that cannot be indexed (a row of the files table).
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

from sensorium.errors import SensoriumError
from sensorium.index.chunking import TextChunk, chunk_page, transcript_stretches, window_transcript
from sensorium.index.layout import OptionValue, Passage, Row

if TYPE_CHECKING:
    from sensorium.engines import Engines
    from sensorium.settings import Settings

log = logging.getLogger("sensorium.index")


class FileWork(Protocol):
    """One file as a producer sees it (the pipeline implements it)."""

    path: Path
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

    def add_passages(self, passages: Sequence[Passage]) -> list[int]:
        """Hand the writer the file's passages (its pages, slides, sections, stretches of a
        transcript: what full-text search ranks); their ordinals, for the rows made from them
        (`Row.passage`). Add a passage before its rows."""
        ...


Producer = Callable[[FileWork], Awaitable[None]]
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
    sniff: Callable[[bytes], str | None] | None = None
    """A content check of its own, tried before `filetype`: the MIME type it finds in a file's
    first bytes, or None."""
    options: Options | None = None
    """The settings that shape its rows, for the manifest: an index never mixes rows made
    with different values."""


# --- the built-in kinds ----------------------------------------------------------------------


def _pdf_options(settings: Settings) -> dict[str, OptionValue]:
    return {"min_image_side": settings.index.min_image_side, "ocr": settings.pdf.ocr,
            "ocr_language": settings.pdf.ocr_language}


def _is_pdf(head: bytes) -> str | None:
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


def _is_heif(head: bytes) -> str | None:
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
