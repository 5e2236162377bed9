"""Text files: plain text in any common encoding, Markdown / AsciiDoc / reStructuredText (cut at
their headings), CSV and TSV (as tables), and WebVTT / SubRip subtitles (one section per cue,
with its time range).

Files are streamed through an incremental decoder, so a 10 GB log costs the character budget,
not 10 GB of memory. The encoding is the one `sniff.detect_encoding` found in the head;
undecodable bytes become U+FFFD rather than failing the file.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator

from sensorium.document.api import DocumentKind, Locator, Metadata
from sensorium.document.builder import Builder, SheetSections
from sensorium.document.markup import HeadingSplitter
from sensorium.document.sniff import HEAD_BYTES, detect_encoding

_CHUNK = 1 << 20
_PARAGRAPH_LINES = 60  # plain text: a section is at most this many lines (a locator per ~page)


def read_lines(path: str, encoding: str | None = None) -> Iterator[str]:
    """The file's lines, decoded incrementally (line ends kept; universal newlines)."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
        encoding = encoding or detect_encoding(head) or "utf-8"
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        pending = ""
        block = head
        while block:
            pending += decoder.decode(block)
            *complete, pending = pending.splitlines(keepends=True) or [""]
            # splitlines puts a trailing "\r" in a complete line; a "\r\n" may be split across
            # blocks, which only costs an empty line.
            yield from complete
            if len(pending) > _CHUNK:  # a "line" of megabytes: hand it on in pieces
                yield pending
                pending = ""
            block = handle.read(_CHUNK)
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending


def parse_text(path: str, kind: DocumentKind, builder: Builder) -> Metadata:
    lines = read_lines(path)
    if kind in (DocumentKind.MARKDOWN, DocumentKind.ASCIIDOC, DocumentKind.RST):
        splitter = HeadingSplitter(builder, {DocumentKind.MARKDOWN: "markdown",
                                             DocumentKind.ASCIIDOC: "asciidoc"}.get(kind, "rst"))
        for number, line in enumerate(lines, start=1):
            splitter.add(number, line)
        return splitter.finish()
    if kind in (DocumentKind.CSV, DocumentKind.TSV):
        _table(lines, kind, builder)
        return Metadata()
    if kind in (DocumentKind.VTT, DocumentKind.SRT):
        _subtitles(lines, builder)
        return Metadata()
    _plain(lines, builder)
    return Metadata()


def _plain(lines: Iterator[str], builder: Builder) -> None:
    """Sections of up to `_PARAGRAPH_LINES` lines, cut at a blank line where one is near, each
    with the line it starts at; a form feed starts a new page (and the page is counted)."""
    collector = builder.lines()
    start, page = 1, 1
    paged = False
    count = 0

    def flush(next_line: int) -> None:
        nonlocal collector, start, count
        builder.section(collector.text(), Locator(page=page if paged else 0, line=start))
        collector, start, count = builder.lines(), next_line, 0

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if "\f" in line:
            before, _, line = line.partition("\f")
            collector.add(before)
            flush(number)
            page += 1
            paged = True
        if not collector.lines and not line.strip():
            start = number + 1
            continue
        collector.add(line)
        count += 1
        paragraph_end = count >= _PARAGRAPH_LINES and not line.strip()
        if collector.full or paragraph_end or count >= 2 * _PARAGRAPH_LINES:
            flush(number + 1)
    flush(0)


def _table(lines: Iterator[str], kind: DocumentKind, builder: Builder) -> None:
    first = next(lines, "")
    delimiter = "\t" if kind is DocumentKind.TSV else _delimiter(first)
    sections = SheetSections(builder, "")
    # csv's own limit on one field (128 KiB) stays: a "field" longer than that is no table.
    reader = csv.reader(_chain(first, lines), delimiter=delimiter)
    row = 0
    try:
        for row, cells in enumerate(reader, start=1):
            sections.add(row, cells)
    except csv.Error as error:
        sections.flush()
        builder.failed(Locator(cells=f"A{row + 1}"), f"row {row + 1}", error)
        return
    sections.flush()


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _delimiter(line: str) -> str:
    """The CSV delimiter from the first line: the most frequent of , ; | and tab (Excel in many
    European locales writes ";")."""
    counts = {delimiter: line.count(delimiter) for delimiter in (",", ";", "\t", "|")}
    best = max(counts, key=lambda key: counts[key])
    return best if counts[best] else ","


_CUE_TIME = re.compile(
    r"^\s*(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})\s*-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
)
_CUE_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


def _subtitles(lines: Iterator[str], builder: Builder) -> None:
    """One section per cue, with its time range; styling tags (<i>, <c.yellow>, {\\an8}) and
    cue numbers dropped. NOTE and STYLE blocks of WebVTT carry no time line and are skipped."""
    times: tuple[float, float] | None = None
    text: list[str] = []

    def flush() -> None:
        nonlocal times
        if times is not None and text:
            builder.section(" ".join(text), Locator(start_seconds=times[0], end_seconds=times[1]))
        times = None
        text.clear()

    for raw in lines:
        line = raw.strip()
        match = _CUE_TIME.match(line)
        if match:
            flush()
            g = match.groups()
            times = (_seconds(g[0], g[1], g[2], g[3]), _seconds(g[4], g[5], g[6], g[7]))
        elif not line:
            flush()
        elif times is not None:
            cleaned = " ".join(_CUE_TAGS.sub("", line).split())
            if cleaned:
                text.append(cleaned)
    flush()
