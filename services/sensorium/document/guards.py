"""Protections against hostile documents, applied before and while a parser runs.

- **Decompression bombs**: every zip-based format (Office Open XML, OpenDocument, EPUB) is
  checked from its central directory before any parser opens it: member count, total declared
  uncompressed size, and each large member's compression ratio. Python's `zipfile` never
  inflates a member past its declared size (it fails the CRC check instead), so a member that
  lies about its size cannot get round the check.
- **XML entities**: Office Open XML and OpenDocument forbid DTDs, and EPUB's XHTML needs none
  beyond `<!DOCTYPE html>`: every XML member of a zip is scanned for `<!ENTITY` declarations
  (in UTF-8 and UTF-16) before parsing, so a billion-laughs or external-entity document never
  reaches a parser. The parsers are safe on their own too (python-docx, python-pptx and
  ebooklib use lxml with `resolve_entities=False`, openpyxl and odfpy use defusedxml when it is
  installed, which the `document` extra makes sure of); the scan gives every such file one
  precise reason instead of a parser-specific failure or a silently empty section.
- **Text that outgrows its file**: `TextBudget` caps each section's and the whole document's
  characters while the text is being built (Tika's write limit is the model), so a small file
  that expands (repeated cells, spans, a long run of lines) stops at the limit with a reason.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass

from sensorium.errors import Reason, SensoriumError

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The engine's limits. Front ends fill them from their settings; the defaults are the
    documented ones."""

    max_section_chars: int = 100_000
    """Characters of one section (a page, slide, sheet range, heading's text); the rest of that
    section is dropped with a PROCESSING_LIMIT error on the section."""
    max_document_chars: int = 10_000_000
    """Characters of the whole document; parsing stops there (a PROCESSING_LIMIT error on the
    document), and what was read is kept."""
    max_zip_members: int = 10_000
    """Members of a zip-based document."""
    max_uncompressed_bytes: int = 1024 * MiB
    """Total declared uncompressed size of a zip-based document's members."""
    max_compression_ratio: float = 200.0
    """Uncompressed / compressed size of any member larger than `ratio_floor_bytes`. Real Office
    XML compresses 5-30:1 and highly repetitive spreadsheets up to ~100:1; bombs reach 1000:1."""
    ratio_floor_bytes: int = 1 * MiB
    """Members smaller than this uncompressed are not ratio-checked (they cannot do harm)."""
    max_pixels: int = 50_000_000
    """Pixels (width x height, from the header) of a picture passed on; larger: IMAGE_TOO_LARGE."""
    max_pictures: int = 1000
    """Pictures passed on per document; the rest are counted in a document error."""
    max_attachment_bytes: int = 256 * MiB
    """Bytes of one mail attachment passed on."""
    convert_timeout_seconds: float = 60.0
    """Time LibreOffice may take to convert one legacy Office file."""
    soffice: str = ""
    """LibreOffice's binary; "" = `soffice` or `libreoffice` on PATH."""

# The settings behind the limits a person can change, named in errors (front ends word them:
# `sensorium.errors.explain`). The zip and XML guards are fixed: no real document comes near them.
SECTION_SETTING = "text.max_chars_per_page"
DOCUMENT_SETTING = "text.max_chars_per_document"


class DocumentTooLong(Exception):
    """Raised inside a parser when the document's character budget is spent; the engine keeps
    the sections read so far."""


class TextBudget:
    """Characters left for one document; parsers take every section's text through `take`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0
        self.exhausted = False

    def take(self, text: str) -> tuple[str, SensoriumError | None]:
        """`text` cut to what the section and document limits allow, and the error saying so
        when it was cut. Raises `DocumentTooLong` when nothing of it fits any more."""
        if self.exhausted:
            raise DocumentTooLong
        error = None
        if len(text) > self.limits.max_section_chars:
            limit = self.limits.max_section_chars
            error = SensoriumError(
                Reason.PROCESSING_LIMIT,
                f"this part has {len(text):,} characters, more than the limit of {limit:,} per "
                "section; the rest of it is not indexed",
                {"limit_chars": str(limit), "chars": str(len(text))}, setting=SECTION_SETTING,
            )
            text = text[:limit]
        left = self.limits.max_document_chars - self.used
        if len(text) >= left:
            text = text[:left]
            self.exhausted = True
        self.used += len(text)
        return text, error

    def room(self) -> int:
        """Characters a section may still grow to (the smaller of both limits); parsers that
        build a section line by line stop adding lines past it."""
        return min(self.limits.max_section_chars, self.limits.max_document_chars - self.used) + 1

    def document_error(self) -> SensoriumError:
        limit = self.limits.max_document_chars
        return SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"the document has more than {limit:,} characters of text, the limit per document; "
            "the text after that point is not indexed",
            {"limit_chars": str(limit)}, setting=DOCUMENT_SETTING,
        )


class LineCollector:
    """Lines of one section, kept only up to the section's room: a sheet of a million rows is
    not turned into a string of gigabytes before the budget cuts it."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.lines: list[str] = []
        self.size = 0
        self.full = False

    def add(self, line: str) -> bool:
        """Keep `line`; False once the section is past its room (the caller may stop)."""
        if self.full:
            return False
        self.lines.append(line)
        self.size += len(line) + 1
        if self.size > self.room:
            self.full = True
        return not self.full

    def text(self) -> str:
        return "\n".join(self.lines)


# --- zip-based formats ---------------------------------------------------------------------

_XML_SUFFIXES = (".xml", ".rels", ".xhtml", ".html", ".htm", ".opf", ".ncx", ".vml")
_ENTITY_MARKS = tuple(
    mark.encode(encoding)
    for mark in ("<!ENTITY", "<!entity")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be")
)
_SCAN_CHUNK = 1 << 20


def check_zip(archive: zipfile.ZipFile, limits: Limits, what: str) -> None:
    """Refuse a zip-based document that is a decompression bomb or carries XML entity
    declarations (DOCUMENT_UNSAFE), before any parser reads it. `what` names the format in
    messages ("the .docx")."""
    members = archive.infolist()
    if len(members) > limits.max_zip_members:
        raise SensoriumError(
            Reason.DOCUMENT_UNSAFE,
            f"{what} holds {len(members):,} files, more than the limit of {limits.max_zip_members:,}; "
            "it is not a document an application wrote",
            {"members": str(len(members)), "limit_members": str(limits.max_zip_members)},
        )
    total = sum(member.file_size for member in members)
    if total > limits.max_uncompressed_bytes:
        raise SensoriumError(
            Reason.DOCUMENT_UNSAFE,
            f"{what} expands to {total:,} bytes, more than the limit of "
            f"{limits.max_uncompressed_bytes:,} (a decompression bomb, or a document too large to read)",
            {"uncompressed_bytes": str(total), "limit_bytes": str(limits.max_uncompressed_bytes)},
        )
    for member in members:
        if member.file_size >= limits.ratio_floor_bytes:
            ratio = member.file_size / max(member.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise SensoriumError(
                    Reason.DOCUMENT_UNSAFE,
                    f"{what}'s member {member.filename!r} expands {ratio:,.0f} times "
                    f"({member.compress_size:,} to {member.file_size:,} bytes), more than the limit of "
                    f"{limits.max_compression_ratio:g}: a decompression bomb",
                    {"member": member.filename[:200], "ratio": f"{ratio:.0f}"},
                )
    for member in members:
        if member.filename.lower().endswith(_XML_SUFFIXES):
            _scan_entities(archive, member, what)


_PROLOG_BYTES = 64 * 1024
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ELEMENT = re.compile(r"<[A-Za-z_:]")


def _prolog_verdict(head: bytes) -> bool | None:
    """Whether an XML part declares entities, judged from its first bytes: True (an internal
    DTD subset or an entity declaration), False (the root element starts first, so no
    declaration can follow), None (still in the prolog: scan the rest)."""
    text = head.decode("utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00<" in head[:4]
                       or b"<\x00" in head[:4] else "latin-1", errors="replace")
    if "<!ENTITY" in text:
        return True
    stripped = _COMMENT.sub("", text)
    if "<!--" in stripped:
        return None
    doctype = stripped.find("<!DOCTYPE")
    root = _ELEMENT.search(stripped)
    if doctype == -1:
        return False if root else None
    if root and root.start() < doctype:
        return False
    end, subset = stripped.find(">", doctype), stripped.find("[", doctype)
    if subset != -1 and (end == -1 or subset < end):
        return True  # an internal subset: nothing any of these formats needs
    return False if end != -1 and root else None


def _scan_entities(archive: zipfile.ZipFile, member: zipfile.ZipInfo, what: str) -> None:
    """Refuse an XML part that declares entities. Declarations can only come in the prolog,
    before the root element, so the first 64 KiB usually decide (a parser would refuse a
    DOCTYPE after the root); a part whose prolog runs on is scanned whole."""
    try:
        with archive.open(member) as stream:
            head = stream.read(_PROLOG_BYTES)
            verdict = _prolog_verdict(head)
            tail = head[-32:]
            while verdict is None:
                chunk = stream.read(_SCAN_CHUNK)
                if not chunk:
                    break
                window = tail + chunk
                if any(mark in window for mark in _ENTITY_MARKS):
                    verdict = True
                tail = window[-32:]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise unreadable(
            f"{what} is damaged: its member {member.filename!r} cannot be read ({error})"
        ) from None
    if verdict:
        raise SensoriumError(
            Reason.DOCUMENT_UNSAFE,
            f"{what}'s member {member.filename!r} declares XML entities (a DTD internal subset), "
            "which no office or e-book application writes and which can expand without bound "
            "(a billion-laughs document); it is not parsed",
            {"member": member.filename[:200]},
        )


def open_zip(path: str, limits: Limits, what: str) -> zipfile.ZipFile:
    """Open and check the zip-based document at `path` (DOCUMENT_UNREADABLE if it is no zip,
    e.g. truncated; DOCUMENT_UNSAFE if it fails `check_zip`)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise unreadable(
            f"{what} is damaged or incomplete (truncated?): its zip directory cannot be read ({error})"
        ) from None
    try:
        check_zip(archive, limits, what)
    except BaseException:
        archive.close()
        raise
    return archive


def has_entity_declaration(data: bytes) -> bool:
    """Whether XML `data` declares entities (scanned as bytes, UTF-8 or UTF-16)."""
    return any(mark in data for mark in _ENTITY_MARKS)


# --- errors --------------------------------------------------------------------------------


def unsafe(message: str) -> SensoriumError:
    return SensoriumError(Reason.DOCUMENT_UNSAFE, message)


def unreadable(message: str) -> SensoriumError:
    return SensoriumError(Reason.DOCUMENT_UNREADABLE, message)


def encrypted(what: str) -> SensoriumError:
    return SensoriumError(
        Reason.DOCUMENT_ENCRYPTED,
        f"{what} is password-protected; Sensorium does not read encrypted documents: save a copy "
        "without the password (File > Info > Protect, or Save As without a password) to index it",
    )
