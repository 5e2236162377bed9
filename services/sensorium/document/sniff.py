"""Which document format a file is, judged by its content; its name counts only among text.

- Zip-based formats are told apart by what they hold: OpenDocument and EPUB by their stored
  `mimetype` member, Office Open XML by the main part's content type in `[Content_Types].xml`
  (so a .docx renamed .xlsx is still a Word document, and a plain zip is no document at all).
- OLE2 compound files (legacy Office, Outlook .msg, password-protected Office Open XML) by the
  streams they hold.
- RTF by `{\\rtf`; everything else must decode as text (a byte-order mark, UTF-8, or an encoding
  charset-normalizer detects with confidence; a NUL byte outside UTF-16/32 means binary), so a
  binary file named .txt is not text. Among text: HTML, WebVTT, SubRip and mail by their
  content; Markdown, AsciiDoc, reStructuredText, CSV and TSV by their extension (their content
  is plain text either way); the rest is plain text.

`sniff(head, path)` sits beside `sensorium.index.sniff`: call it for a file the PDF/media sniff
did not claim. It imports only the standard library at module level (the index job imports it);
olefile and charset-normalizer are imported when a file needs them.
"""

from __future__ import annotations

import codecs
import os
import re
import zipfile
from dataclasses import dataclass

from sensorium.document.api import DocumentKind
from sensorium.errors import Reason

HEAD_BYTES = 8192
"""Bytes of the file's start `sniff` needs (with `path` for zip and OLE2 directories)."""

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_ODF_MIMETYPES = {
    "application/vnd.oasis.opendocument.text": DocumentKind.ODT,
    "application/vnd.oasis.opendocument.text-template": DocumentKind.ODT,
    "application/vnd.oasis.opendocument.presentation": DocumentKind.ODP,
    "application/vnd.oasis.opendocument.presentation-template": DocumentKind.ODP,
    "application/vnd.oasis.opendocument.spreadsheet": DocumentKind.ODS,
    "application/vnd.oasis.opendocument.spreadsheet-template": DocumentKind.ODS,
    "application/epub+zip": DocumentKind.EPUB,
}
# The main part's content type names the application: "...wordprocessingml.document.main+xml",
# "application/vnd.ms-excel.sheet.macroEnabled.main+xml", ...
_OOXML_MAIN = re.compile(rb'ContentType="([^"]*\.main\+xml)"')
_OOXML_APPS = (
    (("wordprocessingml", "ms-word"), DocumentKind.DOCX),
    (("presentationml", "ms-powerpoint"), DocumentKind.PPTX),
    (("spreadsheetml", "ms-excel"), DocumentKind.XLSX),
)
_OOXML_EXTENSIONS = {
    ".docx": DocumentKind.DOCX, ".docm": DocumentKind.DOCX, ".dotx": DocumentKind.DOCX,
    ".dotm": DocumentKind.DOCX, ".pptx": DocumentKind.PPTX, ".pptm": DocumentKind.PPTX,
    ".ppsx": DocumentKind.PPTX, ".potx": DocumentKind.PPTX, ".xlsx": DocumentKind.XLSX,
    ".xlsm": DocumentKind.XLSX, ".xltx": DocumentKind.XLSX,
}
_TEXT_EXTENSIONS = {
    ".md": DocumentKind.MARKDOWN, ".markdown": DocumentKind.MARKDOWN, ".mdown": DocumentKind.MARKDOWN,
    ".adoc": DocumentKind.ASCIIDOC, ".asciidoc": DocumentKind.ASCIIDOC, ".asc": DocumentKind.ASCIIDOC,
    ".rst": DocumentKind.RST, ".rest": DocumentKind.RST,
    ".csv": DocumentKind.CSV, ".tsv": DocumentKind.TSV, ".tab": DocumentKind.TSV,
    ".htm": DocumentKind.HTML, ".html": DocumentKind.HTML, ".xhtml": DocumentKind.HTML,
    ".eml": DocumentKind.EML, ".vtt": DocumentKind.VTT, ".srt": DocumentKind.SRT,
}
_HTML_START = re.compile(
    r"\A(?:\s|<!--.*?-->|<\?xml[^>]*>)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
                         re.IGNORECASE | re.DOTALL)
_SRT_START = re.compile(r"\A\s*\d+\s*\r?\n\s*\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}\s*-->")
_MAIL_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):", re.MULTILINE)
_MAIL_HEADERS = frozenset({
    "from", "to", "subject", "date", "message-id", "mime-version", "received", "return-path",
    "content-type", "cc", "reply-to", "delivered-to", "x-mailer", "user-agent", "in-reply-to",
})
_WESTERN = frozenset({"English", "French", "German", "Spanish", "Portuguese", "Italian", "Dutch", "Danish",
                      "Swedish", "Norwegian", "Finnish", "Catalan", "Icelandic", "Irish"})
# Controls that never appear in text (NUL..BS, SO..US except ESC, and DEL); a few per mille are
# tolerated (form feeds, stray escapes).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


MIME_TYPES: dict[DocumentKind, str] = {
    DocumentKind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    DocumentKind.PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    DocumentKind.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    DocumentKind.ODT: "application/vnd.oasis.opendocument.text",
    DocumentKind.ODP: "application/vnd.oasis.opendocument.presentation",
    DocumentKind.ODS: "application/vnd.oasis.opendocument.spreadsheet",
    DocumentKind.RTF: "application/rtf",
    DocumentKind.EPUB: "application/epub+zip",
    DocumentKind.HTML: "text/html",
    DocumentKind.MARKDOWN: "text/markdown",
    DocumentKind.ASCIIDOC: "text/asciidoc",
    DocumentKind.RST: "text/x-rst",
    DocumentKind.TEXT: "text/plain",
    DocumentKind.CSV: "text/csv",
    DocumentKind.TSV: "text/tab-separated-values",
    DocumentKind.VTT: "text/vtt",
    DocumentKind.SRT: "application/x-subrip",
    DocumentKind.EML: "message/rfc822",
    DocumentKind.MSG: "application/vnd.ms-outlook",
    DocumentKind.DOC: "application/msword",
    DocumentKind.XLS: "application/vnd.ms-excel",
    DocumentKind.PPT: "application/vnd.ms-powerpoint",
}
"""The MIME type of each kind (IANA's where there is one), as the index's sniff reports it."""
KINDS_BY_MIME = {mime: kind for kind, mime in MIME_TYPES.items()}


@dataclass(frozen=True)
class DocumentSniff:
    """The verdict: a `kind`, or the reason the file is skipped and a sentence saying why."""

    kind: DocumentKind | None
    reason: Reason | None = None
    message: str = ""
    encoding: str = ""
    """The text encoding found, for text kinds ("utf-8", "cp1252", ...)."""


def sniff(head: bytes, path: str | os.PathLike[str] | None = None, *, name: str = "") -> DocumentSniff:
    """The document kind of a file from `head` (its first `HEAD_BYTES` bytes) and `path`.

    `path` is needed to read a zip's or compound file's directory (at its end, beyond the head)
    and supplies the extension that tells Markdown, CSV and the like apart among text files,
    unless `name` (the file's name as its owner knows it, e.g. an upload's) gives it instead.
    Without a path, zips are judged by their first members only.
    """
    extension = os.path.splitext(name)[1].lower()
    name = os.fspath(path) if path is not None else ""  # below: the file to open
    extension = extension or os.path.splitext(name)[1].lower()
    if not head:
        return DocumentSniff(None, Reason.INPUT_EMPTY, "the file is empty")
    if head.startswith(_ZIP_MAGIC):
        return _sniff_zip(head, name, extension)
    if head.startswith(_OLE_MAGIC):
        return _sniff_ole(name, extension)
    if head.lstrip()[:5] == b"{\\rtf":
        return DocumentSniff(DocumentKind.RTF)
    encoding = detect_encoding(head)
    if encoding is None:
        return DocumentSniff(
            None, Reason.UNSUPPORTED_TYPE,
            f"the content is binary, not text{_named(extension)}, and of no document type "
            "Sensorium reads",
        )
    text = head.decode(encoding, errors="replace")
    return DocumentSniff(_text_kind(text, extension), encoding=encoding)


def _named(extension: str) -> str:
    return f" (its name ends in {extension}, which does not count)" if extension else ""


def _text_kind(text: str, extension: str) -> DocumentKind:
    stripped = text.lstrip("\ufeff")
    if stripped.startswith("WEBVTT"):
        return DocumentKind.VTT
    if _SRT_START.match(stripped):
        return DocumentKind.SRT
    if _HTML_START.match(stripped):
        return DocumentKind.HTML
    if _looks_like_mail(stripped):
        return DocumentKind.EML
    by_name = _TEXT_EXTENSIONS.get(extension)
    # Extensions choose only among formats whose content is plain text anyway; a .vtt, .srt,
    # .html or .eml whose content is none of those is read as what it is: text.
    if by_name in (DocumentKind.VTT, DocumentKind.SRT, DocumentKind.EML):
        return DocumentKind.TEXT
    return by_name or DocumentKind.TEXT


def _looks_like_mail(text: str) -> bool:
    """RFC 5322 headers from the first line: at least three known ones before the first blank line."""
    header_block = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0]
    first = _MAIL_HEADER.match(header_block)
    if not first and not header_block.startswith("From "):  # mbox "From " line
        return False
    names = {match.group(1).lower() for match in _MAIL_HEADER.finditer(header_block)}
    return len(names & _MAIL_HEADERS) >= 3 and ("from" in names or "received" in names)


def detect_encoding(data: bytes) -> str | None:
    """The text encoding of `data` (a file's head), or None when it is binary.

    A BOM decides; then UTF-8 (the head may end inside a character); a NUL byte without a BOM
    means binary, unless the bytes are UTF-16 without a BOM (every other byte NUL, as Windows
    writes ASCII in UTF-16); then charset-normalizer, which returns nothing for binary data.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    sample = data[:HEAD_BYTES]
    if b"\x00" in sample:
        return _bomless_utf16(sample)
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        text = None
        if error.start >= len(sample) - 3 and error.reason == "unexpected end of data":
            text = sample[: error.start].decode("utf-8")
    if text is not None:
        return "utf-8" if _few_controls(text) else None
    import charset_normalizer  # imported only for files that are not UTF-8

    matches = charset_normalizer.from_bytes(sample)
    best = matches.best()
    if best is None or not _few_controls(str(best)):
        return None
    # On short West European text charset-normalizer often ranks a Baltic or Central European
    # code page first (French as cp1257: "faēade"); where it recognised a West European
    # language and Windows-1252 decodes the bytes too, Windows-1252 is what wrote them.
    if best.language in _WESTERN and any(match.encoding == "cp1252" for match in matches):
        return "cp1252"
    return str(best.encoding)


def _few_controls(text: str) -> bool:
    return len(_BINARY_CONTROLS.findall(text)) <= max(1, len(text) // 1000)


def _bomless_utf16(sample: bytes) -> str | None:
    even, odd = sample[0::2], sample[1::2]
    for zeros, encoding in ((odd, "utf-16-le"), (even, "utf-16-be")):
        if zeros and zeros.count(0) >= 0.9 * len(zeros):
            try:
                text = sample[: len(sample) // 2 * 2].decode(encoding)
            except UnicodeDecodeError:
                continue
            if _few_controls(text.replace("\x00", "")) and "\x00" not in text:
                return encoding
    return None


# --- zip-based ----------------------------------------------------------------------------


def _sniff_zip(head: bytes, name: str, extension: str) -> DocumentSniff:
    # ODF and EPUB store "mimetype" first and uncompressed: the head has it (30-byte local
    # header, then the name, then the data).
    if head[30:38] == b"mimetype":
        mime = head[38:38 + 100].split(b"PK", 1)[0].decode("ascii", "replace").strip()
        kind = _ODF_MIMETYPES.get(mime)
        if kind is not None:
            return DocumentSniff(kind)
    names: list[str] = []
    content_types = b""
    if name:
        try:
            with zipfile.ZipFile(name) as archive:
                names = archive.namelist()
                if "mimetype" in names:
                    mime = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                    if mime in _ODF_MIMETYPES:
                        return DocumentSniff(_ODF_MIMETYPES[mime])
                if "[Content_Types].xml" in names:
                    info = archive.getinfo("[Content_Types].xml")
                    if info.file_size < 1024 * 1024:
                        content_types = archive.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
            return _damaged_zip(head, extension)
    else:
        content_types = head
    for match in _OOXML_MAIN.finditer(content_types):
        kind = _ooxml_kind(match.group(1).decode("ascii", "replace"))
        if kind is not None:
            return DocumentSniff(kind)
    if not name:
        verdict = _damaged_zip(head, extension)
        return verdict if verdict.kind is not None else _plain_zip(names, extension)
    return _plain_zip(names, extension)


def _plain_zip(names: list[str], extension: str) -> DocumentSniff:
    count = len(names)
    what = "a zip archive" if not count else f"a zip archive ({count} file{'s' if count != 1 else ''})"
    return DocumentSniff(
        None, Reason.UNSUPPORTED_TYPE,
        f"the content is {what}, not an Office, OpenDocument or EPUB document{_named(extension)}; "
        "Sensorium does not index inside archives",
    )


def _damaged_zip(head: bytes, extension: str) -> DocumentSniff:
    """A zip whose directory cannot be read (truncated, say): if its first members show it is a
    document, it is that kind (the parser then reports it unreadable, an error row the user
    sees); otherwise it is no document."""
    markers = ((b"word/", DocumentKind.DOCX), (b"ppt/", DocumentKind.PPTX), (b"xl/", DocumentKind.XLSX))
    for marker, kind in markers:
        if marker in head:
            return DocumentSniff(kind)
    if b"[Content_Types].xml" in head and extension in _OOXML_EXTENSIONS:
        return DocumentSniff(_OOXML_EXTENSIONS[extension])
    return DocumentSniff(
        None, Reason.UNSUPPORTED_TYPE,
        f"the content is a damaged zip archive, not a readable document{_named(extension)}",
    )


def _ooxml_kind(content_type: str) -> DocumentKind | None:
    for markers, kind in _OOXML_APPS:
        if any(marker in content_type for marker in markers):
            return kind
    return None


# --- OLE2 compound files ------------------------------------------------------------------

_OLE_STREAMS = (
    ("WordDocument", DocumentKind.DOC),
    ("Workbook", DocumentKind.XLS),
    ("Book", DocumentKind.XLS),
    ("PowerPoint Document", DocumentKind.PPT),
    ("__properties_version1.0", DocumentKind.MSG),
)


def _sniff_ole(name: str, extension: str) -> DocumentSniff:
    if not name:
        return DocumentSniff(None, Reason.UNSUPPORTED_TYPE, "an OLE2 compound file needs its path")
    try:
        import olefile
    except ImportError:
        return DocumentSniff(
            None, Reason.UNSUPPORTED_TYPE,
            "the content is an OLE2 compound file (legacy Office or Outlook); install "
            "sensorium[document] to read it",
        )
    try:
        with olefile.OleFileIO(name) as ole:
            streams = {"/".join(entry) for entry in ole.listdir(streams=True, storages=True)}
    except (OSError, ValueError, EOFError, IndexError, KeyError, TypeError):
        # olefile raises a zoo of errors on damaged files; the extension is all that is left.
        guess = {".doc": DocumentKind.DOC, ".xls": DocumentKind.XLS, ".ppt": DocumentKind.PPT,
                 ".msg": DocumentKind.MSG}.get(extension) or _OOXML_EXTENSIONS.get(extension)
        if guess is not None:
            return DocumentSniff(guess)
        return DocumentSniff(None, Reason.UNSUPPORTED_TYPE, "the content is a damaged OLE2 compound file")
    if "EncryptedPackage" in streams:
        # A password-protected .docx/.xlsx/.pptx: the format is inside the encryption; the
        # name is the only hint. The parser reports it as encrypted.
        return DocumentSniff(_OOXML_EXTENSIONS.get(extension, DocumentKind.DOCX))
    for stream, kind in _OLE_STREAMS:
        if stream in streams:
            return DocumentSniff(kind)
    if any(entry.startswith("__substg1.0_") for entry in streams):
        return DocumentSniff(DocumentKind.MSG)
    return DocumentSniff(
        None, Reason.UNSUPPORTED_TYPE,
        f"the content is an OLE2 compound file of no type Sensorium reads{_named(extension)} "
        "(it reads Word, Excel and PowerPoint 97-2003 files and Outlook .msg)",
    )
