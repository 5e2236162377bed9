"""What a file is, judged by its content; its name counts only among text documents.

The kind table (`sensorium.index.kinds`) says what each kind looks like: a kind with a content
check of its own (PDF: `%PDF-` within the first 1024 bytes, as the PDF service accepts it) is
tried first, in table order; then `filetype`'s magic-number matchers name a MIME type, which the
table maps to a kind; then the `fallback` kinds' checks (documents: zip and OLE2 directories,
RTF, and whatever decodes as text). A file of any other type is skipped with
`UNSUPPORTED_TYPE` (with the reason a kind's check gave, when one recognised it), and an empty
one with `INPUT_EMPTY`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import filetype

from sensorium.errors import Reason
from sensorium.index.kinds import KINDS, FileKind, Refusal, described

HEAD_BYTES = 8192
"""Bytes to read from the start of a file for `sniff` (filetype looks at no more)."""


@dataclass(frozen=True)
class Sniffed:
    """The verdict on one file: a `kind` (a name of the kind table), or the reason it is
    skipped and a sentence saying why."""

    kind: str | None
    mime: str = ""
    """The MIME type the content matched ("" when nothing matched)."""
    reason: Reason | None = None
    message: str = ""


def sniff(head: bytes, path: str | os.PathLike[str] | None = None) -> Sniffed:
    """Judge a file by `head`, its first `HEAD_BYTES` bytes (fewer if the file is shorter), and
    the file at `path` where a kind's check needs more (a zip's directory is at its end) or its
    name (Markdown and CSV are told apart from other text by it)."""
    if not head:
        return Sniffed(None, reason=Reason.INPUT_EMPTY, message="the file is empty")
    where = Path(path) if path is not None else None
    first = [kind for kind in KINDS.values() if not kind.fallback]
    refusals: list[Refusal] = []
    for kind in first:
        if (claim := _check(kind, head, where, refusals)) is not None:
            return claim
    match = filetype.guess(head)
    if match is not None:
        for kind in first:
            if match.mime in kind.mimes:
                return Sniffed(kind.name, match.mime)
    for kind in KINDS.values():
        if kind.fallback and (claim := _check(kind, head, where, refusals)) is not None:
            return claim
    mime = match.mime if match is not None else ""
    if refusals:
        refusal = refusals[0]
        return Sniffed(None, mime, refusal.reason, f"{refusal.message}; Sensorium indexes {described()}")
    if match is None:
        return Sniffed(
            None, reason=Reason.UNSUPPORTED_TYPE,
            message=f"the content is of no type Sensorium recognises; it indexes {described()}",
        )
    return Sniffed(
        None, match.mime, Reason.UNSUPPORTED_TYPE,
        f"the content is {match.mime}; Sensorium indexes {described()}",
    )


def _check(kind: FileKind, head: bytes, path: Path | None, refusals: list[Refusal]) -> Sniffed | None:
    if kind.sniff is None:
        return None
    verdict = kind.sniff(head, path)
    if isinstance(verdict, Refusal):
        refusals.append(verdict)
        return None
    return None if verdict is None else Sniffed(kind.name, verdict)


def sniff_file(path: str | os.PathLike[str]) -> Sniffed:
    """`sniff` the file at `path` (reads its first `HEAD_BYTES` bytes; OSError if it cannot)."""
    with open(path, "rb") as handle:
        return sniff(handle.read(HEAD_BYTES), path)


class NotRegularFile(OSError):
    """The path is a link, FIFO, socket or device now (it was a regular file when listed)."""


def open_regular(path: str | os.PathLike[str]) -> int:
    """A descriptor of the regular file at `path`, opened without following a link and without
    blocking (a FIFO would wait for a writer forever), and checked to be a regular file once
    open. `NotRegularFile` otherwise; OSError if it cannot be opened."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a link
            raise NotRegularFile(errno.ELOOP, "a link, not a regular file", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotRegularFile(errno.EINVAL, "not a regular file (a FIFO, socket or device)", str(path))
    return descriptor


def hash_and_sniff(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> tuple[str, Sniffed]:
    """Read the file at `path` once: the hex sha256 of its bytes, and `sniff` of its head.

    Memory stays at one chunk whatever the file's size. The file is opened as `open_regular`
    opens it: `NotRegularFile` if it is no longer a regular file; OSError if it cannot be read.
    """
    digest = hashlib.sha256()
    head = b""
    with open(open_regular(path), "rb") as handle:
        while block := handle.read(chunk_bytes):
            if len(head) < HEAD_BYTES:
                head += block[: HEAD_BYTES - len(head)]
            digest.update(block)
    return digest.hexdigest(), sniff(head, path)
