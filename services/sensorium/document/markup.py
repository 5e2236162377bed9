"""HTML (selectolax's Lexbor parser, a C HTML5 parser), and Markdown, AsciiDoc and
reStructuredText read as text with their headings as locators.

HTML: an HTML5 parser declares no entities (a DTD's internal subset is ignored, as browsers
do), so nothing in a page expands beyond its characters. Scripts, styles and templates are left
out; headings (h1-h6) make the heading path; tables become table sections, their spans capped
as the HTML standard caps them (colspan 1000, rowspan 65534) and written once per row, so a
1 KB table of huge spans does not turn into millions of cells. The walk is iterative: a page of
100,000 nested elements cannot exhaust Python's stack.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

from sensorium.document.api import Locator, Metadata
from sensorium.document.builder import Builder
from sensorium.document.guards import DocumentTooLong, has_entity_declaration, unsafe

ImageLoader = Callable[[str], tuple[str, bytes] | None]
"""Resolves an <img src> to (name, bytes), or None (e.g. a remote image)."""

_SKIPPED = frozenset({"script", "style", "noscript", "template", "head", "title", "svg", "math",
                      "iframe", "object", "select", "button", "-comment", "-doctype", "!doctype"})
_BLOCKS = frozenset({
    "p", "div", "li", "br", "tr", "pre", "blockquote", "section", "article", "ul", "ol", "dl", "dt",
    "dd", "header", "footer", "nav", "aside", "figure", "figcaption", "hr", "address", "main",
    "form", "fieldset", "details", "summary", "caption", "body", "html",
})
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_SPACES = re.compile(r"\s+")
_MAX_COLSPAN, _MAX_ROWSPAN = 1000, 65534
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


def html_metadata(tree: Any) -> Metadata:
    def meta(*names: str) -> str:
        for name in names:
            node = tree.css_first(f'meta[name="{name}" i], meta[property="{name}" i]')
            if node is not None:
                content = node.attributes.get("content") or ""
                if content.strip():
                    return " ".join(content.split())
        return ""

    title_node = tree.css_first("title")
    language = (tree.root.attributes.get("lang") or "") if tree.root is not None else ""
    return Metadata(
        title=" ".join(title_node.text().split()) if title_node is not None else meta("dc.title", "og:title"),
        author=meta("author", "dc.creator", "article:author"),
        created=_iso_date(meta("dcterms.created", "article:published_time", "date")),
        modified=_iso_date(meta("dcterms.modified", "article:modified_time", "last-modified")),
        language=language.strip(),
    )


def _iso_date(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_html(data: bytes | str, builder: Builder, *, base_headings: tuple[str, ...] = (),
               images: ImageLoader | None = None) -> Metadata:
    """Add the page's sections to `builder`; return its metadata. A page that declares XML
    entities (XHTML with an internal DTD subset) is refused: an XML reader would expand them."""
    from selectolax.lexbor import LexborHTMLParser

    head = data[:4096] if isinstance(data, bytes) else data[:4096].encode("utf-8", "replace")
    if b"<?xml" in head and has_entity_declaration(data if isinstance(data, bytes) else data.encode()):
        raise unsafe("the page is XHTML that declares XML entities, which can expand without bound "
                     "(a billion-laughs document); it is not parsed")
    tree = LexborHTMLParser(data)
    metadata = html_metadata(tree)
    if tree.body is not None:
        _Walker(builder, base_headings, images).walk(tree.body)
    return metadata


class _Walker:
    def __init__(self, builder: Builder, base: tuple[str, ...], images: ImageLoader | None) -> None:
        self.builder, self.base, self.images = builder, base, images
        self.headings: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.pre = 0

    def locator(self) -> Locator:
        path = list(self.base)
        for _level, text in self.headings:
            if not path or path[-1] != text:  # an EPUB chapter's title is often its own h1
                path.append(text)
        return Locator(headings=tuple(path))

    def flush(self) -> None:
        text = "".join(self.parts)
        self.parts.clear()
        lines = [line.strip() for line in text.split("\n")]
        self.builder.section("\n".join(line for line in lines if line), self.locator())

    def walk(self, root: Any) -> None:
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            tag = node.tag
            if leaving:
                if tag == "pre":
                    self.pre -= 1
                if tag in _BLOCKS:
                    self.parts.append("\n")
                continue
            if tag == "-text":
                text = node.text_content or ""
                self.parts.append(text if self.pre else _SPACES.sub(" ", text))
                if sum(map(len, self.parts)) > self.builder.budget.room():
                    self.flush()  # a huge run of inline text: cut here, the budget decides
                continue
            if tag in _SKIPPED:
                continue
            if tag in _HEADINGS:
                title = " ".join(node.text(deep=True, separator=" ").split())
                if title:
                    self.flush()
                    level = _HEADINGS[tag]
                    while self.headings and self.headings[-1][0] >= level:
                        self.headings.pop()
                    self.headings.append((level, title))
                continue
            if tag == "table":
                self.flush()
                self.builder.table(_table_rows(node), self.locator())
                continue
            if tag == "img":
                self._image(node)
                continue
            if tag == "pre":
                self.pre += 1
            if tag in _BLOCKS:
                self.parts.append("\n")
            stack.append((node, True))
            children = list(node.iter(include_text=True))
            stack.extend((child, False) for child in reversed(children))
        self.flush()

    def _image(self, node: Any) -> None:
        src = (node.attributes.get("src") or "").strip()
        if not src:
            return
        found: tuple[str, bytes] | None = None
        match = _DATA_URL.match(src)
        if match:
            try:
                found = ("inline image", base64.b64decode(src[match.end():], validate=False))
            except (binascii.Error, ValueError):
                found = None
        elif self.images is not None:
            found = self.images(src)
        if found is not None:
            self.builder.picture(found[1], self.locator(), found[0])


def _table_rows(table: Any) -> Iterator[list[str]]:
    """The grid of a table's own rows (not those of tables nested in its cells), spans
    expanded within the standard's caps; a spanned cell's text fills each slot it covers."""
    carried: dict[int, tuple[int, str]] = {}  # column -> (rows still covered, text)
    for row in _own_rows(table):
        cells: list[str] = []
        column = 0
        for cell in row.iter():
            if cell.tag not in ("td", "th"):
                continue
            while column in carried:
                cells.append(carried[column][1])
                column += 1
            text = " ".join(cell.text(deep=True, separator=" ").split())
            colspan = _span(cell.attributes.get("colspan"), _MAX_COLSPAN)
            rowspan = _span(cell.attributes.get("rowspan"), _MAX_ROWSPAN)
            for offset in range(colspan):
                cells.append(text)
                if rowspan > 1:
                    carried[column + offset] = (rowspan, text)
            column += colspan
        while column in carried:
            cells.append(carried[column][1])
            column += 1
        yield cells
        carried = {col: (left - 1, text) for col, (left, text) in carried.items() if left > 1}


def _own_rows(table: Any) -> Iterator[Any]:
    for child in table.iter():
        if child.tag == "tr":
            yield child
        elif child.tag in ("thead", "tbody", "tfoot"):
            yield from (row for row in child.iter() if row.tag == "tr")


def _span(value: str | None, cap: int) -> int:
    try:
        number = int((value or "1").strip())
    except ValueError:
        return 1
    return min(max(number, 1), cap)


# --- Markdown, AsciiDoc, reStructuredText -----------------------------------------------------

_MD_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_MD_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_ADOC = re.compile(r"^(={1,6})[ \t]+(.+?)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}[ \t]*$")
_FRONT_MATTER = re.compile(r"^(title|author):\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


class HeadingSplitter:
    """Sections of a text markup file cut at its headings; each section's locator is the
    heading path and the line it starts at. Lines come in one at a time (files are streamed)."""

    def __init__(self, builder: Builder, syntax: str) -> None:
        self.builder, self.syntax = builder, syntax
        self.headings: list[tuple[int, str]] = []
        self.lines = builder.lines()
        self.start_line = 1
        self.previous: str | None = None
        self.previous_number = 0
        self.fenced = False
        self.rst_styles: list[str] = []
        self.title = ""
        self.author = ""
        self.front_matter = False

    def add(self, number: int, line: str) -> None:
        line = line.rstrip("\r\n")
        if number == 1 and self.syntax == "markdown" and line.strip() == "---":
            self.front_matter = True
        if self.front_matter:
            match = _FRONT_MATTER.match(line)
            if match:
                key, value = match.group(1).lower(), match.group(2).strip("'\"")
                if key == "title":
                    self.title = value
                else:
                    self.author = value
            if number > 1 and line.strip() in ("---", "..."):
                self.front_matter = False
            self._keep(number, line)
            return
        if _FENCE.match(line):
            self.fenced = not self.fenced
        heading = None if self.fenced else self._heading(line)
        if heading is not None:
            level, title, underline = heading
            if underline and self.previous is not None:
                self._unkeep()  # the title line was kept as text before its underline came
            self._flush(number if not underline else self.previous_number)
            while self.headings and self.headings[-1][0] >= level:
                self.headings.pop()
            self.headings.append((level, title))
            if not self.title and (level == 0 or (level == 1 and self.syntax != "asciidoc")):
                self.title = title
            self.previous = None
            return
        self._keep(number, line)

    def _heading(self, line: str) -> tuple[int, str, bool] | None:
        if self.syntax == "markdown":
            match = _MD_ATX.match(line)
            if match:
                return len(match.group(1)), match.group(2).strip(), False
            setext = _MD_SETEXT.match(line)
            if setext and self.previous and self.previous.strip():
                return (1 if setext.group(1)[0] == "=" else 2), self.previous.strip(), True
        elif self.syntax == "asciidoc":
            match = _ADOC.match(line)
            if match:
                return len(match.group(1)) - 1, match.group(2), False
        elif self.syntax == "rst":
            adornment = _RST_ADORNMENT.match(line)
            prev = (self.previous or "").strip()
            if adornment and prev and not _RST_ADORNMENT.match(prev) and len(line.strip()) >= len(prev):
                style = adornment.group(1)
                if style not in self.rst_styles:
                    self.rst_styles.append(style)
                return self.rst_styles.index(style) + 1, prev, True
        return None

    def _keep(self, number: int, line: str) -> None:
        if not self.lines.lines and not line.strip():
            self.start_line = number + 1
        elif self.lines.full:
            self._flush(number)
            self.lines.add(line)
        else:
            self.lines.add(line)
        self.previous, self.previous_number = line, number

    def _unkeep(self) -> None:
        if self.lines.lines:
            self.lines.lines.pop()

    def _flush(self, next_line: int) -> None:
        locator = Locator(headings=tuple(title for _level, title in self.headings), line=self.start_line)
        text = self.lines.text()
        self.lines = self.builder.lines()
        self.start_line = next_line
        self.builder.section(text, locator)

    def finish(self) -> Metadata:
        try:
            self._flush(0)
        except DocumentTooLong:
            raise
        return Metadata(title=self.title, author=self.author)
