"""PDF extraction on PyMuPDF: pure functions from a file path to small frozen dataclasses.

This module runs inside the PDF worker processes (`sensorium.pdf.workers`): PyMuPDF is not
thread-safe and holds the GIL, and MuPDF can crash or hang on hostile input, so the server never
calls it on its own threads. It imports only PyMuPDF, the standard library, `sensorium.errors`
and `sensorium.text`, which keeps worker start-up and restarts cheap.

Text is normalised where it is extracted (`sensorium.text.normalize`, unless the options say
otherwise): ligatures and other compatibility characters folded, invisible characters dropped,
words broken across lines by a hyphen joined, with the page's own words as the evidence for a
compound's hyphen. Each block is normalised on its own; the page's text is its blocks' texts,
so both always agree. The same applies to OCR'd text. PyMuPDF's own TEXT_DEHYPHENATE joins
every line-end hyphen, compounds' too (166 wrong of 2,879 on bench/text_normalisation.py's
pages, against 39), and its ligature expansion (TEXT_PRESERVE_LIGATURES off) does no more than
the normalisation's folding: neither flag is used. The page is the evidence because a document's
pages may be extracted by different workers (the whole document's words would make 24 wrong).

Reading order: a page's text follows the order of its content stream (PyMuPDF's default,
`sort=False`) — the order the authoring application wrote it, which keeps each column of a
multi-column layout whole. `sort=True` would reorder blocks by position (top to bottom, then
left to right) and interleave the lines of side-by-side columns.

Coordinates are PDF points with the origin at the top-left of the page as displayed: MuPDF
reports text and image positions on the unrotated page, so they are mapped through the page's
rotation matrix.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import os
import re
import stringprep
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymupdf

from sensorium.errors import Reason, SensoriumError
from sensorium.pdf.api import (
    BBox,
    Block,
    DocumentInfo,
    ExtractOptions,
    ImageResult,
    OcrStatus,
    PageResult,
)
from sensorium.text import Vocabulary, normalize

if TYPE_CHECKING:  # the settings module (pydantic) stays out of the workers
    from sensorium.settings import PdfSettings, TextSettings

log = logging.getLogger("sensorium.pdf")

# Content-stream order, ligatures and whitespace kept, no image blocks (images are extracted
# separately, and text-only textpages are cheaper).
_TEXT_FLAGS = pymupdf.TEXTFLAGS_TEXT
# Tesseract is most accurate near 300 dpi; below ~100 dpi recognition degrades badly.
OCR_DPI = 300
MIN_OCR_DPI = 100
# What MuPDF raises on content it cannot interpret: its own error types, and RuntimeError /
# ValueError from the bindings. Anything else escaping a page is a bug of ours, not the file's
# fault, and must fail loudly (INTERNAL_ERROR, logged with its stack) instead of being booked
# as a damaged page.
MUPDF_ERRORS: tuple[type[Exception], ...] = (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)
# Stored encodings Pillow (hence the embedding service) decodes; others are re-encoded as PNG.
_KEPT_IMAGE_FORMATS = frozenset({"png", "jpeg", "jpx", "tiff", "bmp", "gif"})
_TESSDATA_GLOBS = (
    "/usr/share/tesseract-ocr/*/tessdata",  # Debian / Ubuntu (tesseract-ocr-eng)
    "/usr/share/tessdata",  # Fedora, Alpine, Arch
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


@dataclass(frozen=True)
class Limits:
    """The server's limits and OCR set-up (from `PdfSettings`)."""

    max_pages: int = 5000
    max_pixels: int = 50_000_000
    max_document_bytes: int | None = None
    ocr_enabled: bool = True
    ocr_language: str = "eng"
    tessdata_dir: str | None = None
    max_chars_per_page: int = 100_000
    """Characters of text kept of one page; the rest is cut (the page's `limit` says so). A
    1.6 KB PDF can draw one form object 20,000 times: 6 million characters on one page."""
    max_chars_per_document: int = 10_000_000
    """Characters of text kept of one document (`DocumentTextBudget`); reading stops there."""

    @classmethod
    def from_settings(cls, settings: PdfSettings, text: TextSettings | None = None) -> Limits:
        """The limits `settings` and `text` (the text group; None: its defaults) set."""
        chars = {} if text is None else {"max_chars_per_page": text.max_chars_per_page,
                                         "max_chars_per_document": text.max_chars_per_document}
        return cls(
            **chars,
            max_pages=settings.max_pages,
            max_pixels=settings.max_pixels,
            max_document_bytes=settings.max_document_bytes,
            ocr_enabled=settings.ocr,
            ocr_language=settings.ocr_language,
            tessdata_dir=str(settings.tessdata_dir) if settings.tessdata_dir else None,
        )




def open_document(
    path: str | os.PathLike[str],
    password: str = "",
    *,
    max_pages: int | None = None,
    max_bytes: int | None = None,
) -> pymupdf.Document:
    """Open the PDF at `path`, authenticate, and check its size and that it has between 1 and
    `max_pages` pages.

    Authentication comes before anything touches pages: MuPDF 1.28 leaves an AES-256 (R6)
    document with 0 pages, even after the right password, once `page_count` was read first.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size == 0:
        raise SensoriumError(Reason.INPUT_EMPTY, "the file is empty; send the PDF's content")
    if max_bytes is not None and size > max_bytes:
        raise SensoriumError(
            Reason.INPUT_TOO_LARGE,
            f"the document has {size} bytes, more than the limit of {max_bytes}; send a "
            "smaller document",
            {"size_bytes": str(size), "limit_bytes": str(max_bytes)},
            setting="pdf.max_document_bytes",
        )
    if not _has_pdf_header(path):
        raise _unreadable()
    try:
        # filetype="pdf": without it MuPDF opens any text file as a one-page text document.
        doc = pymupdf.open(path, filetype="pdf")
    except pymupdf.EmptyFileError as error:
        raise SensoriumError(Reason.INPUT_EMPTY, "the file is empty; send the PDF's content") from error
    except (RuntimeError, pymupdf.mupdf.FzErrorBase) as error:
        raise _unreadable() from error
    try:
        if doc.needs_pass:
            _authenticate(doc, password)
        page_count = doc.page_count
        if page_count == 0:
            damaged = " (its structure is damaged and repair found none)" if doc.is_repaired else ""
            raise SensoriumError(
                Reason.PDF_NO_PAGES,
                f"the document has no pages{damaged}; check that the file is a complete PDF",
            )
        if max_pages is not None and page_count > max_pages:
            raise SensoriumError(
                Reason.PDF_TOO_MANY_PAGES,
                f"the document has {page_count} pages, more than the limit of {max_pages}; "
                "split the document and send the parts",
                {"page_count": str(page_count), "limit_pages": str(max_pages)},
                setting="pdf.max_pages",
            )
    except BaseException:
        doc.close()
        raise
    return doc


def _has_pdf_header(path: str) -> bool:
    """Whether `%PDF-` starts within the first 1024 bytes, as readers such as Acrobat require.

    MuPDF's repair turns almost any bytes (a PNG, a zero-filled file) into a "PDF" with a page
    or none; refusing them here gives the client PDF_UNREADABLE instead of an empty success.
    """
    with open(path, "rb") as handle:
        return b"%PDF-" in handle.read(1024)


def saslprep(password: str) -> str | None:
    """`password` prepared with SASLprep (RFC 4013), as PDF 2.0 requires for AES-256 (R6).

    Returns None when the password contains characters SASLprep prohibits. Unassigned code
    points are allowed (the "query" profile): refusing them could lock a user out of a file
    written by a tool built on a newer Unicode version.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in password if not stringprep.in_table_b1(ch)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if any(check(ch) for ch in prepared for check in prohibited):
        return None
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        # RFC 3454 §6: right-to-left text must be all RTL/neutral and start and end with RTL.
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            return None
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            return None
    return prepared


def _authenticate(doc: pymupdf.Document, password: str) -> None:
    if not password:
        raise SensoriumError(
            Reason.PDF_PASSWORD_REQUIRED,
            "the document is encrypted; send its user or owner password in options.password",
        )
    # AES-256 (R6) hashes the SASLprep'd UTF-8 password; older revisions use the raw bytes, and
    # MuPDF applies neither transformation itself, so try the raw form first, then SASLprep'd.
    candidates = [password]
    prepared = saslprep(password)
    if prepared is not None and prepared != password:
        candidates.append(prepared)
    if not any(doc.authenticate(candidate) for candidate in candidates):
        raise SensoriumError(
            Reason.PDF_PASSWORD_INCORRECT,
            "the password in options.password does not open this document; "
            "check it (the user or the owner password) and send it again",
        )


def _unreadable() -> SensoriumError:
    return SensoriumError(
        Reason.PDF_UNREADABLE,
        "the file is not a readable PDF; send a PDF document, or repair it (e.g. with "
        "`qpdf in.pdf out.pdf`) and send it again",
    )


def read_info(doc: pymupdf.Document) -> DocumentInfo:
    """The document's metadata; call it on an authenticated document (before, it is empty)."""
    try:
        meta = doc.metadata or {}
    except (RuntimeError, pymupdf.mupdf.FzErrorBase):
        meta = {}  # a broken information dictionary costs the metadata, not the text

    def text(key: str) -> str:
        # Some producers NUL-terminate info strings (e.g. ImageMagick's titles).
        return str(meta.get(key) or "").replace("\x00", "").strip()

    version = text("format")
    return DocumentInfo(
        title=text("title"),
        author=text("author"),
        subject=text("subject"),
        keywords=text("keywords"),
        creator=text("creator"),
        producer=text("producer"),
        creation_time=parse_pdf_date(text("creationDate")),
        modification_time=parse_pdf_date(text("modDate")),
        page_count=doc.page_count,
        pdf_version=version.removeprefix("PDF").strip(),
        encrypted=bool(meta.get("encryption")),
        repaired=bool(doc.is_repaired),
    )


_PDF_DATE = re.compile(
    r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
    r"\s*(?:(Z)|([+-])(\d{2})(?:'?(\d{2}))?'?)?"
)


def parse_pdf_date(value: str) -> datetime | None:
    """A PDF date string ("D:20230101120000+01'00'") as an aware datetime; None if unparseable.

    A date without a zone is taken as UTC: PDF leaves it unknown, and UTC at least keeps the
    value stable across servers.
    """
    match = _PDF_DATE.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, zulu, sign, tz_hour, tz_minute = match.groups()
    zone = UTC
    if sign and not zulu:
        offset = timedelta(hours=int(tz_hour), minutes=int(tz_minute or 0))
        if offset >= timedelta(hours=24):
            return None
        zone = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None


def resolve_range(page_count: int, first: int, last: int) -> range:
    """0-based page indices for 1-based inclusive `first`..`last` (0 = open end)."""
    first_page = first or 1
    last_page = last or page_count
    if first and last and first > last:
        raise SensoriumError(
            Reason.INVALID_REQUEST,
            f"first_page ({first}) is after last_page ({last}); send first_page <= last_page, "
            "or 0 for an open end",
        )
    if first_page > page_count or last_page > page_count:
        past = first_page if first_page > page_count else last_page
        raise SensoriumError(
            Reason.PAGE_OUT_OF_RANGE,
            f"page {past} is past the end: the document has {page_count} pages; "
            f"ask for pages 1 to {page_count}",
            {"page_count": str(page_count)},
        )
    return range(first_page - 1, last_page)


def extract_page(
    doc: pymupdf.Document, index: int, options: ExtractOptions, limits: Limits
) -> tuple[PageResult, list[ImageResult]]:
    """Extract page `index` (0-based): its text in content-stream order, and images if asked.

    A page MuPDF cannot interpret comes back with `error` set (PDF_PAGE_FAILED) instead of
    raising, so one broken page does not cost the caller the others.
    """
    number = index + 1
    try:
        page = doc.load_page(index)
        rect = page.rect
        matrix = page.rotation_matrix if page.rotation else None
        textpage = page.get_textpage(flags=_TEXT_FLAGS)
        raw = _raw_blocks(page, textpage)
        has_text_layer = any(block[4].strip() for block in raw)
        ocr_status, ocr_message, ocr_setting = OcrStatus.NOT_NEEDED, "", ""
        if not has_text_layer:
            ocr_status, ocr_message, ocr_setting, raw = _ocr(page, options, limits)
        if options.normalize:
            raw = _normalized(raw)
        # Listing images parses the page's resources: ~8 % of the cost of extracting its text,
        # paid only by callers who asked for images.
        images = doc.get_page_images(index, full=True) if options.include_images else []
    except MUPDF_ERRORS as error:  # a broken page must not fail the rest
        log.warning("page %d failed: %s: %s", number, type(error).__name__, error)
        message = (
            f"page {number} could not be extracted ({type(error).__name__}); the other pages "
            "were. The file may be damaged: repairing it (e.g. `qpdf in.pdf out.pdf`) may help"
        )
        return (
            PageResult(
                page_number=number,
                text="",
                error=SensoriumError(Reason.PDF_PAGE_FAILED, message, {"page": str(number)}),
            ),
            [],
        )
    raw, limit = _cut_to_page_limit(raw, number, limits.max_chars_per_page)
    result = PageResult(
        page_number=number,
        text="\n".join(block[4] for block in raw),
        blocks=[Block(_bbox(x0, y0, x1, y1, matrix), text) for x0, y0, x1, y1, text in raw]
        if options.include_blocks
        else [],
        has_text_layer=has_text_layer,
        ocr_status=ocr_status,
        ocr_message=ocr_message,
        ocr_setting=ocr_setting,
        width=rect.width,
        height=rect.height,
        image_count=len(images),
        limit=limit,
    )
    if not options.include_images:
        return result, []
    placements = _image_placements(page, matrix)
    return result, [
        _extract_image(doc, number, i, entry, placements, limits.max_pixels) for i, entry in enumerate(images)
    ]


# The settings behind the text limits, named in their messages (front ends word them).
PAGE_CHARS_SETTING = "text.max_chars_per_page"
DOCUMENT_CHARS_SETTING = "text.max_chars_per_document"


def _cut(texts: list[str], limit: int) -> list[str]:
    """The leading texts that, joined by newlines as a page's blocks are, fit in `limit`
    characters; the last one kept is cut inside."""
    kept: list[str] = []
    left = limit
    for text in texts:
        if left <= 0:
            break
        kept.append(text[:left])
        left -= len(text) + 1  # the newline that joins it to the next
    return kept


def _cut_to_page_limit(
    raw: list[_RawBlock], number: int, limit: int
) -> tuple[list[_RawBlock], SensoriumError | None]:
    chars = sum(len(block[4]) for block in raw) + max(0, len(raw) - 1)
    if chars <= limit:
        return raw, None
    cut = [(*block[:4], text) for block, text in zip(raw, _cut([b[4] for b in raw], limit), strict=False)]
    return cut, SensoriumError(
        Reason.PROCESSING_LIMIT,
        f"page {number} has {chars:,} characters of text, more than the limit of {limit:,} per "
        "page; the rest of the page is not returned (no real page holds this much: the file "
        "repeats its content)",
        {"page": str(number), "chars": str(chars), "limit_chars": str(limit)},
        setting=PAGE_CHARS_SETTING,
    )


class DocumentTextBudget:
    """The characters one document may still return. The pages of a document are extracted
    in several workers at once, so the per-document limit is kept where their results meet,
    in page order: the page that crosses it is cut, and nothing after it is returned."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, page: PageResult) -> tuple[PageResult, bool]:
        """`page` as far as the budget allows, and whether the budget is spent (stop after it)."""
        left = self.limit - self.used
        if len(page.text) <= left:
            self.used += len(page.text)
            return page, False
        text = page.text[:left]
        self.used = self.limit
        blocks = [Block(block.bbox, kept) for block, kept in
                  zip(page.blocks, _cut([b.text for b in page.blocks], left), strict=False)]
        error = SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"the document has more than {self.limit:,} characters of text, the limit per "
            f"document; page {page.page_number} is cut there and the pages after it are not "
            "returned",
            {"page": str(page.page_number), "limit_chars": str(self.limit)},
            setting=DOCUMENT_CHARS_SETTING,
        )
        return dataclasses.replace(page, text=text, blocks=blocks, limit=error), True


def _image_placements(page: pymupdf.Page, matrix: pymupdf.Matrix | None) -> dict[tuple[int, int], list[BBox]]:
    """Where images of each size are drawn, in drawing order.

    `page.get_image_rects(xref)` would be simpler, but it decodes every image on the page to
    match them by digest, bombs included; `get_image_info()` without hashes decodes nothing,
    and an image's stored size is what identifies it here.
    """
    placements: dict[tuple[int, int], list[BBox]] = {}
    try:
        infos = page.get_image_info()
    except (RuntimeError, pymupdf.mupdf.FzErrorBase):
        return placements  # the images are still extracted, without positions
    for info in infos:
        key = (int(info["width"]), int(info["height"]))
        x0, y0, x1, y1 = info["bbox"]
        placements.setdefault(key, []).append(_bbox(x0, y0, x1, y1, matrix))
    return placements


_RawBlock = tuple[float, float, float, float, str]


def _raw_blocks(page: pymupdf.Page, textpage: pymupdf.TextPage) -> list[_RawBlock]:
    """Text blocks as plain tuples, in content-stream order: `Block` objects are built only
    when the caller asked for them (per block they cost as much as extracting the text)."""
    return [
        (x0, y0, x1, y1, text.rstrip("\n"))
        for x0, y0, x1, y1, text, _number, kind in page.get_text("blocks", textpage=textpage, sort=False)
        if kind == 0
    ]


def _normalized(raw: list[_RawBlock]) -> list[_RawBlock]:
    vocabulary = Vocabulary(block[4] for block in raw)
    return [(x0, y0, x1, y1, normalize(text, vocabulary=vocabulary)) for x0, y0, x1, y1, text in raw]


def _bbox(x0: float, y0: float, x1: float, y1: float, matrix: pymupdf.Matrix | None) -> BBox:
    if matrix is None:
        return BBox(x0, y0, x1, y1)
    rect = (pymupdf.Rect(x0, y0, x1, y1) * matrix).normalize()
    return BBox(rect.x0, rect.y0, rect.x1, rect.y1)


def _ocr(
    page: pymupdf.Page, options: ExtractOptions, limits: Limits
) -> tuple[OcrStatus, str, str, list[_RawBlock]]:
    """OCR a page without a text layer, when asked, enabled and installed: the status, why it
    did not happen and the setting that decides it, the blocks."""
    if not options.ocr:
        return OcrStatus.SKIPPED, "", "", []
    if not limits.ocr_enabled:
        return OcrStatus.UNAVAILABLE, "OCR is disabled", "pdf.ocr", []
    tessdata, _ = find_tessdata(limits.tessdata_dir, limits.ocr_language)
    if tessdata is None:
        # The detail names server paths: the runtime logs it at start; callers get the gist.
        return OcrStatus.UNAVAILABLE, ocr_missing_message(limits.ocr_language), "pdf.tessdata_dir", []
    rect = page.rect
    # Choose the resolution from the pixel budget before rendering anything: a page can be
    # 200 x 200 inches, and its rendering would exhaust memory.
    fitting_dpi = int(72 * (limits.max_pixels / max(rect.width * rect.height, 1.0)) ** 0.5)
    dpi = min(OCR_DPI, fitting_dpi)
    if dpi < MIN_OCR_DPI:
        pixels = int(rect.width * MIN_OCR_DPI / 72) * int(rect.height * MIN_OCR_DPI / 72)
        return (
            OcrStatus.FAILED,
            f"the page is too large to OCR: {pixels} pixels at {MIN_OCR_DPI} dpi, over the limit "
            f"of {limits.max_pixels}",
            "pdf.max_pixels",
            [],
        )
    try:
        textpage = page.get_textpage_ocr(
            flags=_TEXT_FLAGS, language=limits.ocr_language, dpi=dpi, full=True, tessdata=tessdata
        )
        raw = _raw_blocks(page, textpage)
    except MUPDF_ERRORS as error:  # Tesseract's failures come back through MuPDF
        log.warning("OCR failed: %s: %s", type(error).__name__, error)
        return OcrStatus.FAILED, f"OCR failed on this page ({type(error).__name__})", "", []
    return OcrStatus.APPLIED, "", "", raw


def ocr_missing_message(language: str) -> str:
    """Why OCR cannot run when its language data is missing (no paths: it may reach a client;
    the front end adds how to point the tessdata setting at the data)."""
    languages = [lang for lang in language.split("+") if lang]
    needed = ", ".join(f"{lang}.traineddata" for lang in languages)
    packages = " ".join(f"tesseract-ocr-{lang}" for lang in languages)
    return (f"OCR is not installed (Tesseract language data {needed} is missing); install it "
            f"(Debian/Ubuntu: {packages}) or name the directory that holds it")


@functools.lru_cache(maxsize=8)
def find_tessdata(configured: str | None, language: str) -> tuple[str | None, str]:
    """The Tesseract data directory holding every `language` ("eng+deu"), or None and why.

    Looks at `configured` (SENSORIUM_PDF__TESSDATA_DIR), then $TESSDATA_PREFIX, then the usual
    system directories — without `pymupdf.get_tessdata()`, which shells out to `tesseract`.
    """
    needed = [f"{lang}.traineddata" for lang in language.split("+") if lang]
    if configured:
        candidates = [configured]
    else:
        prefix = os.environ.get("TESSDATA_PREFIX")
        candidates = [prefix] if prefix else []
        for pattern in _TESSDATA_GLOBS:
            candidates.extend(sorted(glob.glob(pattern), reverse=True))
    for candidate in candidates:
        if all((Path(candidate) / name).is_file() for name in needed):
            return candidate, ""
    where = configured or "$TESSDATA_PREFIX or the system tessdata directories"
    packages = " ".join(f"tesseract-ocr-{lang}" for lang in language.split("+") if lang)
    return None, (
        f"OCR is not installed: {', '.join(needed)} not found in {where}; install the "
        f"language data (Debian/Ubuntu: apt-get install {packages}) or set "
        "SENSORIUM_PDF__TESSDATA_DIR to a directory holding it"
    )


def _extract_image(
    doc: pymupdf.Document,
    page_number: int,
    index: int,
    entry: tuple[Any, ...],  # get_images(full=True): (xref, smask, width, height, bpc, colorspace, ...)
    placements: dict[tuple[int, int], list[BBox]],
    max_pixels: int,
) -> ImageResult:
    xref, width, height = entry[0], int(entry[2]), int(entry[3])
    drawn = placements.get((width, height))
    bbox = drawn.pop(0) if drawn else None
    meta = {"page": str(page_number), "index": str(index)}

    def failed(reason: Reason, message: str, setting: str = "", **extra: str) -> ImageResult:
        error = SensoriumError(reason, message, {**meta, **extra}, setting=setting)
        return ImageResult(page_number, index, bbox, "", b"", width, height, error)

    # The stored dimensions are checked before decoding: decompression bombs exist.
    if width * height > max_pixels:
        return failed(
            Reason.IMAGE_TOO_LARGE,
            f"image {index} on page {page_number} has {width}x{height} = {width * height} "
            f"pixels, over the limit of {max_pixels}", "pdf.max_pixels",
            limit_pixels=str(max_pixels),
        )
    try:
        extracted = doc.extract_image(xref)
        if not extracted:
            raise ValueError("not an image")
        fmt, data = str(extracted["ext"]).lower(), bytes(extracted["image"])
        if fmt not in _KEPT_IMAGE_FORMATS:
            pixmap = pymupdf.Pixmap(doc, xref)
            if pixmap.alpha or (pixmap.colorspace and pixmap.colorspace.n > 3):
                pixmap = pymupdf.Pixmap(pymupdf.csRGB, pixmap)
            fmt, data = "png", pixmap.tobytes("png")
        width, height = int(extracted.get("width", width)), int(extracted.get("height", height))
    except MUPDF_ERRORS as error:
        log.warning("image %d on page %d failed: %s: %s", index, page_number, type(error).__name__, error)
        return failed(
            Reason.IMAGE_UNDECODABLE,
            f"image {index} on page {page_number} could not be decoded ({type(error).__name__})",
        )
    return ImageResult(page_number, index, bbox, fmt, data, width, height)
