"""The document service's domain: what a caller asks (`ParseOptions`), what it gets (a
`Document`: metadata, sections with locators, pictures, attachments), and the interface both
implementations of the one seam offer (`DocumentEngine`: the runtime in this process, or a
server over gRPC) with its key `DOCUMENT`.

Small frozen dataclasses, picklable across the worker processes that parse documents
(`sensorium.workers`); the wire module and remote callers import them without the parsers.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sensorium.contract import EngineKey
from sensorium.errors import SensoriumError


class DocumentKind(enum.StrEnum):
    """The document formats the engine reads, as `sensorium.document.sniff.sniff` names them.

    Macro-enabled Office files (.docm, .xlsm, .pptm) and templates are the same kinds as their
    plain variants: the parts the engine reads are identical; macros are never run or read.
    """

    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    ODT = "odt"
    ODP = "odp"
    ODS = "ods"
    RTF = "rtf"
    EPUB = "epub"
    HTML = "html"
    MARKDOWN = "markdown"
    ASCIIDOC = "asciidoc"
    RST = "rst"
    TEXT = "text"
    CSV = "csv"
    TSV = "tsv"
    VTT = "vtt"
    SRT = "srt"
    EML = "eml"
    MSG = "msg"
    DOC = "doc"
    XLS = "xls"
    PPT = "ppt"


LEGACY_KINDS = frozenset({DocumentKind.DOC, DocumentKind.XLS, DocumentKind.PPT})
"""Binary Office formats read by converting them with LibreOffice."""


class SectionKind(enum.StrEnum):
    TEXT = "text"
    TABLE = "table"
    """A table as text: a line per row, each cell with its header ("Header: value | ...")."""


@dataclass(frozen=True)
class Locator:
    """Where in the file a section or picture is, in the terms of its format. Fields that do
    not apply stay empty; `describe()` words it for a person."""

    page: int = 0
    """1-based page of a paged format; slides count as pages (slide 3 = page 3). 0: not paged."""
    title: str = ""
    """The slide's title (presentations)."""
    sheet: str = ""
    """The sheet's name (spreadsheets)."""
    cells: str = ""
    """The cell range in A1 notation, e.g. "A1:D20" (spreadsheets)."""
    headings: tuple[str, ...] = ()
    """The heading path of flowing text, outermost first ("Report", "Methods")."""
    line: int = 0
    """1-based line of a text file where the section starts; 0 for other formats."""
    start_seconds: float | None = None
    """Subtitles: when the cue starts."""
    end_seconds: float | None = None
    """Subtitles: when the cue ends."""

    def describe(self) -> str:
        """E.g. 'slide 3 "Results"', 'sheet "Budget" A1:D20', 'Report > Methods', '0:01:02-0:01:05'."""
        parts: list[str] = []
        if self.page:
            parts.append(f"{'slide' if self.title else 'page'} {self.page}")
        if self.title:
            parts.append(f'"{self.title}"')
        if self.sheet:
            parts.append(f'sheet "{self.sheet}"' + (f" {self.cells}" if self.cells else ""))
        elif self.cells:
            parts.append(f"cells {self.cells}")
        if self.headings:
            parts.append(" > ".join(self.headings))
        if self.line:
            parts.append(f"line {self.line}")
        if self.start_seconds is not None:
            end = self.end_seconds if self.end_seconds is not None else self.start_seconds
            parts.append(f"{_clock(self.start_seconds)}-{_clock(end)}")
        return " ".join(parts)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass(frozen=True)
class Section:
    """One piece of the document's text with its place; `error` is set when this part could
    not be read (its text is then empty or partial) while the rest of the document was."""

    text: str
    locator: Locator
    kind: SectionKind = SectionKind.TEXT
    error: SensoriumError | None = None


@dataclass(frozen=True)
class Picture:
    """A picture inside the document. `width`/`height` come from the image's header (0 when it
    cannot be read); `error` is set, and `data` empty, when it is not usable."""

    data: bytes
    format: str
    """"png", "jpeg", "gif", ... as the bytes are (never converted)."""
    width: int
    height: int
    locator: Locator
    name: str = ""
    """Its name inside the file (e.g. "word/media/image1.png")."""
    error: SensoriumError | None = None


@dataclass(frozen=True)
class Attachment:
    """A file attached to a mail; the index treats it as a file of its own at `path`."""

    name: str
    """The attachment's file name as the mail gives it (made safe: no folders, no controls)."""
    path: str
    """"<mail path>!/<name>", unique within the mail."""
    data: bytes
    error: SensoriumError | None = None
    """Set (and `data` empty) when the attachment is not passed on, e.g. nested too deep."""


@dataclass(frozen=True)
class Metadata:
    """What the format records about the document; empty where it records nothing."""

    title: str = ""
    author: str = ""
    created: datetime | None = None
    modified: datetime | None = None
    language: str = ""


@dataclass(frozen=True)
class Document:
    """A parsed document: its metadata, its sections in reading order, its pictures and (mail)
    attachments. `errors` are problems that cost part of the document but not all of it (text
    cut at the character limit, pictures over the pixel limit): the sections hold what was read.
    """

    kind: DocumentKind
    metadata: Metadata
    sections: tuple[Section, ...]
    pictures: tuple[Picture, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    errors: tuple[SensoriumError, ...] = ()
    page_count: int = 0
    """Pages or slides of a paged format; 0 otherwise."""
    converted_with: str = ""
    """"libreoffice" when a legacy format was converted before reading; "" otherwise."""
    extra: dict[str, str] = field(default_factory=dict)
    """Format-specific facts worth showing (e.g. the mail's "from", "to" and "subject")."""

    @property
    def text(self) -> str:
        """All sections' text, a blank line between sections."""
        return "\n\n".join(section.text for section in self.sections if section.text)


ATTACHMENT_SEPARATOR = "!/"
"""Between a mail's path and an attachment's name: "inbox/dues.eml!/report.docx"."""


@dataclass(frozen=True)
class ParseOptions:
    """What to read from one document (a request's options, as plain values)."""

    name: str = ""
    """The file's name or path as the caller knows it ("" = the path read): its extension tells
    Markdown, CSV and the like apart among text files and names the format of a password-
    protected Office file; attachments get paths under it ("<name>!/<attachment>")."""
    kind: DocumentKind | None = None
    """The format, when the caller knows it already; None = sniffed from the content."""
    pictures: bool = True
    """Return the pictures inside the document (their bytes); False leaves them out."""
    attachments: bool = True
    """Return a mail's attachments (their bytes); False leaves them out."""
    attached: bool = False
    """The file is itself a mail attachment: its own attachments are listed with an error
    instead of their bytes (attachments are read one level deep)."""


class DocumentEngine(Protocol):
    """Document parsing, in this process or on a server (see `sensorium.engines`)."""

    async def parse(self, path: str | os.PathLike[str], options: ParseOptions) -> Document:
        """The document at `path`. Raises `SensoriumError` for a file that yields nothing:
        UNSUPPORTED_TYPE (no format the engine reads; legacy Office without LibreOffice),
        DOCUMENT_UNREADABLE, DOCUMENT_ENCRYPTED, DOCUMENT_UNSAFE, INPUT_EMPTY, INPUT_TOO_LARGE,
        PROCESSING_LIMIT (time or memory), PARSER_CRASH."""
        ...


DOCUMENT: EngineKey[DocumentEngine] = EngineKey("document")
