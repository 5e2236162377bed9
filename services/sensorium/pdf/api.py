"""The PDF service's domain: what a caller asks (`ExtractOptions`), what it gets (`DocumentInfo`,
`PageResult`, `ImageResult`, `ExtractionSummary`), and the interface both implementations of
the one seam offer (`PdfEngine`: the runtime in this process, or a server over gRPC).

Plain dataclasses only: the PDF worker processes, the gRPC wire module and remote callers
import this without PyMuPDF.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sensorium.contract import EngineKey
from sensorium.errors import SensoriumError


class OcrStatus(enum.StrEnum):
    """What happened about OCR on one page (mirrors the proto's `OcrStatus`)."""

    NOT_NEEDED = "NOT_NEEDED"
    SKIPPED = "SKIPPED"
    APPLIED = "APPLIED"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED = "FAILED"


@dataclass(frozen=True)
class ExtractOptions:
    """What to extract from one document (the request's options, as plain values)."""

    first_page: int = 0
    """First page, 1-based; 0 = the first page."""
    last_page: int = 0
    """Last page, 1-based and inclusive; 0 = the last page."""
    password: str = ""
    """User or owner password of an encrypted document."""
    include_blocks: bool = False
    """Also return text blocks with bounding boxes."""
    include_images: bool = False
    """Also return embedded images."""
    ocr: bool = True
    """OCR pages without a text layer (when the server has OCR enabled and installed)."""
    normalize: bool = True
    """Text as a reader sees it (`sensorium.text.normalize`); False: the characters as the text
    layer (or OCR) has them, ligatures and line-end hyphens included (in this process only: the
    gRPC API always normalises)."""


@dataclass(frozen=True)
class BBox:
    """A rectangle in points, origin top-left of the displayed page, y growing down."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Block:
    """One text block (usually a paragraph); lines separated by newlines."""

    bbox: BBox
    text: str


@dataclass(frozen=True)
class DocumentInfo:
    """Document-level metadata, read after authentication."""

    title: str
    author: str
    subject: str
    keywords: str
    creator: str
    producer: str
    creation_time: datetime | None
    modification_time: datetime | None
    page_count: int
    pdf_version: str
    encrypted: bool
    repaired: bool


@dataclass(frozen=True)
class PageResult:
    """The text of one page; `error` is set (and the text empty) when the page failed."""

    page_number: int
    text: str
    blocks: list[Block] = field(default_factory=list)
    has_text_layer: bool = False
    ocr_status: OcrStatus = OcrStatus.NOT_NEEDED
    ocr_message: str = ""
    ocr_setting: str = ""
    """The setting that decides why OCR did not happen ("pdf.ocr"), for the front end to name
    the way its reader can change it; "" when none does."""
    width: float = 0.0
    height: float = 0.0
    error: SensoriumError | None = None
    image_count: int = 0
    limit: SensoriumError | None = None
    """Set (PROCESSING_LIMIT) when the page's text was cut at a character limit, per page or
    per document; `text` and `blocks` hold what was kept."""


@dataclass(frozen=True)
class ImageResult:
    """One embedded image; `error` is set (and `data` empty) when it was not extracted."""

    page_number: int
    index: int
    bbox: BBox | None
    format: str
    data: bytes
    width: int
    height: int
    error: SensoriumError | None = None

Item = DocumentInfo | PageResult | ImageResult
Results = DocumentInfo | list[PageResult | ImageResult]
"""What an extraction yields: the document's info first, then lists of the items extracted
together (pages in order, each followed by its images)."""


@dataclass(frozen=True)
class ExtractionSummary:
    """What a whole extraction came to (the stream's last message)."""

    pages_extracted: int = 0
    pages_failed: int = 0
    pages_without_text: int = 0
    images_extracted: int = 0
    processing_seconds: float = 0.0
    pages_truncated: int = 0
    """Pages whose text was cut at a character limit (their `limit` says which)."""


@dataclass
class Totals:
    """Counts an extraction's items as they go out, for its `ExtractionSummary`."""

    pages: int = 0
    failed: int = 0
    without_text: int = 0
    images: int = 0
    truncated: int = 0
    started: float = field(default_factory=time.perf_counter)

    def count(self, item: PageResult | ImageResult) -> None:
        if isinstance(item, ImageResult):
            self.images += item.error is None
            return
        self.pages += 1
        self.failed += item.error is not None
        self.without_text += not item.has_text_layer
        self.truncated += item.limit is not None

    def summary(self) -> ExtractionSummary:
        return ExtractionSummary(self.pages, self.failed, self.without_text, self.images,
                                 time.perf_counter() - self.started, self.truncated)


class PdfEngine(Protocol):
    """PDF extraction, in this process or on a server (see `sensorium.engines`)."""

    def extract(
        self, path: str | os.PathLike[str], options: ExtractOptions
    ) -> AsyncGenerator[Results, None]:
        """The document's `DocumentInfo`, then lists of pages (each followed by its images, when
        `options.include_images`). Raises `SensoriumError` for a document that fails as a whole."""
        ...


PDF: EngineKey[PdfEngine] = EngineKey("pdf")
