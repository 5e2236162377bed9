"""What a file is, judged by its first bytes, never by its name.

PDFs are recognised the way the PDF service accepts them (`%PDF-` within the first 1024
bytes, as Acrobat requires), so a file sniffed as a PDF is one the extractor will try to open.
Everything else goes through `filetype`'s magic-number matchers; the MIME types it reports are
mapped to the three kinds the index job handles. A file of any other type is skipped with
`UNSUPPORTED_TYPE`, and an empty one with `INPUT_EMPTY`.
"""

from __future__ import annotations

import enum
import hashlib
import os
from dataclasses import dataclass

import filetype

from sensorium.errors import Reason

HEAD_BYTES = 8192
"""Bytes to read from the start of a file for `sniff` (filetype looks at no more)."""
_PDF_HEADER_WINDOW = 1024
# HEIF major brands (ISO/IEC 23008-12): filetype knows "heic" and "mif1"/"msf1" listing
# "heic", but not e.g. "heix" (10-bit, some iPhones and Canon cameras) or "heim"/"heis".
# (Image sequences, "hevc"/"hevx", are left to filetype: they may hold no still image.)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis"})


class FileKind(enum.StrEnum):
    """The kinds of file the index job turns into rows."""

    PDF = "pdf"
    AUDIO = "audio"
    IMAGE = "image"


# MIME types (as filetype names them) -> kind. Images: what the embedding service decodes
# (HEIC/HEIF with the `media` extra's pillow-heif, AVIF with Pillow >= 11.3). Audio: containers
# PyAV decodes that carry sound; video containers count as audio, since their sound track is
# what the job transcribes.
_KINDS: dict[str, FileKind] = {
    **dict.fromkeys(
        [
            "image/jpeg", "image/png", "image/apng", "image/gif", "image/webp", "image/tiff",
            "image/bmp", "image/heic", "image/avif",
        ],
        FileKind.IMAGE,
    ),
    **dict.fromkeys(
        [
            "audio/x-wav",
            "audio/mpeg",
            "audio/x-flac",
            "audio/ogg",
            "audio/mp4",
            "audio/aac",
            "audio/x-aiff",
            "video/mp4",
            "video/x-m4v",
            "video/quicktime",
            "video/webm",
            "video/x-matroska",
        ],
        FileKind.AUDIO,
    ),
}


@dataclass(frozen=True)
class Sniffed:
    """The verdict on one file: a `kind`, or the reason it is skipped and a sentence saying why."""

    kind: FileKind | None
    mime: str = ""
    """The MIME type the content matched ("" when nothing matched)."""
    reason: Reason | None = None
    message: str = ""


def sniff(head: bytes) -> Sniffed:
    """Judge a file by `head`, its first `HEAD_BYTES` bytes (fewer if the file is shorter)."""
    if not head:
        return Sniffed(None, reason=Reason.INPUT_EMPTY, message="the file is empty")
    if b"%PDF-" in head[:_PDF_HEADER_WINDOW]:
        return Sniffed(FileKind.PDF, "application/pdf")
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return Sniffed(FileKind.IMAGE, "image/heic")
    match = filetype.guess(head)
    if match is None:
        return Sniffed(
            None,
            reason=Reason.UNSUPPORTED_TYPE,
            message="the content is of no type Sensorium recognises; it indexes PDF, audio and image files",
        )
    kind = _KINDS.get(match.mime)
    if kind is None:
        return Sniffed(
            None,
            match.mime,
            Reason.UNSUPPORTED_TYPE,
            f"the content is {match.mime}; Sensorium indexes PDF, audio and image files",
        )
    return Sniffed(kind, match.mime)


def sniff_file(path: str | os.PathLike[str]) -> Sniffed:
    """`sniff` the file at `path` (reads its first `HEAD_BYTES` bytes; OSError if it cannot)."""
    with open(path, "rb") as handle:
        return sniff(handle.read(HEAD_BYTES))


def hash_and_sniff(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> tuple[str, Sniffed]:
    """Read the file at `path` once: the hex sha256 of its bytes, and `sniff` of its head.

    Memory stays at one chunk whatever the file's size. OSError if it cannot be read.
    """
    digest = hashlib.sha256()
    head = b""
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            if len(head) < HEAD_BYTES:
                head += block[: HEAD_BYTES - len(head)]
            digest.update(block)
    return digest.hexdigest(), sniff(head)
