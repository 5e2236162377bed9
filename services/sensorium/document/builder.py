"""How the parsers hand their results to the engine: one `Builder` per document.

Every section's text leaves the engine through `Builder.section`, which applies
`normalise_text` (the one place text is normalised) and the character budget, in that order.
Tables become text here too (`table_lines`), and pictures are sized and checked here.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence

from sensorium.document.api import Attachment, Locator, Picture, Section, SectionKind
from sensorium.document.guards import DocumentTooLong, Limits, LineCollector, TextBudget
from sensorium.errors import Reason, SensoriumError
from sensorium.text import normalize

log = logging.getLogger("sensorium.document")

# Formats the embedding service decodes (Pillow without plugins); others (EMF, WMF, SVG, ...)
# are reported with an error, not passed on.
EMBEDDABLE_FORMATS = frozenset({"png", "jpeg", "gif", "bmp", "tiff", "webp"})
TABLE_SEPARATOR = " | "


def normalise_text(text: str) -> str:
    """THE place where section text leaves the engine: every section passes through here once,
    through the project's one text normalisation (`sensorium.text.normalize`: words hyphenated
    across lines joined, ligatures and compatibility characters folded, invisible characters
    dropped), so document text is searched like a PDF's."""
    return normalize(text).strip()


class Builder:
    """Collects one document's sections, pictures, attachments and errors."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = TextBudget(limits)
        self.sections: list[Section] = []
        self.pictures: list[Picture] = []
        self.attachments: list[Attachment] = []
        self.errors: list[SensoriumError] = []
        self._pictures_dropped = 0

    def section(
        self, text: str, locator: Locator, kind: SectionKind = SectionKind.TEXT,
        error: SensoriumError | None = None,
    ) -> None:
        """Add a section (skipped when it has no text and no error). Raises `DocumentTooLong`
        once the document's character budget is spent."""
        text = normalise_text(text)
        if not text and error is None:
            return
        kept, limit_error = self.budget.take(text)
        self.sections.append(Section(kept, locator, kind, error or limit_error))
        if self.budget.exhausted:
            raise DocumentTooLong

    def failed(self, locator: Locator, what: str, exc: BaseException) -> None:
        """Record that one part of the document (`what`: "slide 3") could not be read."""
        log.warning("%s could not be read: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
        error = SensoriumError(
            Reason.DOCUMENT_UNREADABLE,
            f"{what} could not be read ({type(exc).__name__}); the rest of the document was",
        )
        self.sections.append(Section("", locator, SectionKind.TEXT, error))

    def lines(self) -> LineCollector:
        """A line collector bounded by what a section may still hold."""
        if self.budget.exhausted:
            raise DocumentTooLong
        return LineCollector(self.budget.room())

    def table(self, rows: Iterable[Sequence[str]], locator: Locator) -> None:
        """Add a table as a TABLE section (see `table_lines`)."""
        lines = self.lines()
        table_lines(rows, lines)
        self.section(lines.text(), locator, SectionKind.TABLE)

    def picture(self, data: bytes, locator: Locator, name: str = "") -> None:
        """Add a picture found in the document, sized from its header."""
        if len(self.pictures) >= self.limits.max_pictures:
            self._pictures_dropped += 1
            return
        fmt, width, height = image_size(data)
        error = None
        if fmt not in EMBEDDABLE_FORMATS:
            error = SensoriumError(
                Reason.IMAGE_UNDECODABLE,
                f"picture {name or len(self.pictures) + 1} is {fmt or 'of an unknown format'}, which is "
                "not embedded (PNG, JPEG, GIF, BMP, TIFF and WebP are)",
                {"name": name[:200]},
            )
        elif width * height > self.limits.max_pixels:
            error = SensoriumError(
                Reason.IMAGE_TOO_LARGE,
                f"picture {name} has {width}x{height} pixels, over the limit of {self.limits.max_pixels:,}",
                {"name": name[:200], "limit_pixels": str(self.limits.max_pixels)},
                setting="document.max_pixels",
            )
        self.pictures.append(Picture(b"" if error else data, fmt, width, height, locator, name, error))

    def finish_errors(self) -> list[SensoriumError]:
        errors = list(self.errors)
        if self._pictures_dropped:
            errors.append(SensoriumError(
                Reason.PROCESSING_LIMIT,
                f"the document has {self._pictures_dropped + len(self.pictures)} pictures; only the first "
                f"{self.limits.max_pictures} are passed on",
                {"limit_pictures": str(self.limits.max_pictures)}, setting="document.max_pictures",
            ))
        return errors


def table_lines(rows: Iterable[Sequence[str]], lines: LineCollector,
                header: Sequence[str] | None = None) -> None:
    """A table as lines a query can match: the header row's cells joined by " | ", then each
    other row as "header: value" pairs, so every line carries its own column names.

    The header is the first row with text, unless `header` is given (a later part of a sheet
    whose header row was written with its first part). A merged cell that repeats along a row
    (spans) is written once per row. Empty cells are left out.
    """
    for row in rows:
        cells = [" ".join(cell.split()) for cell in row]
        if not any(cells):
            continue
        if header is None:
            header = cells
            if not lines.add(TABLE_SEPARATOR.join(_dedupe(cells))):
                return
            continue
        pairs: list[str] = []
        previous: str | None = None
        for index, cell in enumerate(cells):
            if not cell or cell == previous:
                previous = cell
                continue
            previous = cell
            name = header[index] if index < len(header) else ""
            pairs.append(f"{name}: {cell}" if name and name != cell else cell)
        if pairs and not lines.add(TABLE_SEPARATOR.join(pairs)):
            return


def _dedupe(cells: Sequence[str]) -> list[str]:
    out: list[str] = []
    for cell in cells:
        if cell and (not out or out[-1] != cell):
            out.append(cell)
    return out


def image_size(data: bytes) -> tuple[str, int, int]:
    """The format ("png", "jpeg", ...) and size of an image from its header, without decoding
    its pixels; ("", 0, 0) when it is no image Pillow recognises."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is part of the document extra
        return "", 0, 0
    try:
        with Image.open(io.BytesIO(data)) as image:
            return str(image.format or "").lower(), int(image.width), int(image.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "", 0, 0


def column_name(index: int) -> str:
    """Spreadsheet column letters of a 0-based column index (0 -> "A", 27 -> "AB")."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def cell_range(first_row: int, last_row: int, first_col: int, last_col: int) -> str:
    """A1 range from 1-based rows and 0-based columns: (1, 20, 0, 3) -> "A1:D20"."""
    start, end = f"{column_name(first_col)}{first_row}", f"{column_name(last_col)}{last_row}"
    return start if start == end else f"{start}:{end}"


class SheetSections:
    """Cuts a sheet (or CSV) into sections of consecutive rows, each with its cell range, so a
    hit points at the rows it is in. A section ends after `rows_per_section` rows or when its
    text passes `chars_per_section`; every row line carries the header row's names."""

    def __init__(self, builder: Builder, sheet: str, rows_per_section: int = 50,
                 chars_per_section: int = 4000) -> None:
        self.builder, self.sheet = builder, sheet
        self.rows_per_section, self.chars_per_section = rows_per_section, chars_per_section
        self.header: list[str] | None = None
        self._rows: list[list[str]] = []
        self._first_row = 0
        self._last_row = 0
        self._min_col: int | None = None
        self._max_col = 0
        self._chars = 0

    def add(self, row_number: int, cells: Sequence[str]) -> None:
        """Add the row at 1-based `row_number` (cells from column A). Raises DocumentTooLong."""
        cells = [" ".join(cell.split()) for cell in cells]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            return
        if self.header is None:
            self.header = cells
        if not self._rows:
            self._first_row = row_number
        self._rows.append(cells)
        self._last_row = row_number
        self._max_col = max(self._max_col, len(cells) - 1)
        first = next(index for index, cell in enumerate(cells) if cell)
        self._min_col = first if self._min_col is None else min(self._min_col, first)
        self._chars += sum(len(cell) for cell in cells) + len(cells)
        if len(self._rows) >= self.rows_per_section or self._chars >= self.chars_per_section:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        lines = self.builder.lines()
        # The header row names the columns of every section; its own line only in the first.
        starts_with_header = self._rows[0] is self.header
        table_lines(self._rows, lines, None if starts_with_header else self.header)
        text = lines.text()
        cells = cell_range(self._first_row, self._last_row, self._min_col or 0, self._max_col)
        locator = Locator(sheet=self.sheet, cells=cells)
        self._rows, self._chars, self._min_col, self._max_col = [], 0, None, 0
        self.builder.section(text, locator, SectionKind.TABLE)
