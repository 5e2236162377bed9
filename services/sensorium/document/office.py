"""Office Open XML: Word (.docx/.docm) with python-docx, PowerPoint (.pptx/.pptm) with
python-pptx, Excel (.xlsx/.xlsm) with openpyxl in read-only mode.

The zip has been checked (`guards.open_zip`) before any library opens it. Locators: the
heading path for Word, the slide number and title for PowerPoint, the sheet and cell range for
Excel.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from sensorium.document.api import Locator, Metadata
from sensorium.document.builder import Builder, SheetSections

_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título|titolo|kop)\s*(\d)$", re.IGNORECASE)
_WORD_MAIN_TYPES = (
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A_BLIP = "{http://schemas.openxmlformats.org/drawingml/2006/main}blip"
_R_EMBED = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}embed"


def core_metadata(properties: Any) -> Metadata:
    """Metadata from an OPC core-properties object (python-docx, python-pptx, openpyxl)."""
    def text(name: str) -> str:
        return str(getattr(properties, name, "") or "").strip()

    return Metadata(
        title=text("title"),
        author=text("author") or text("creator"),
        created=_aware(getattr(properties, "created", None)),
        modified=_aware(getattr(properties, "modified", None)),
        language=text("language"),
    )


def _aware(value: Any) -> dt.datetime | None:
    """OPC dates are UTC (W3CDTF with Z); the libraries return them naive."""
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --- Word ---------------------------------------------------------------------------------


def parse_docx(path: str, builder: Builder) -> tuple[Metadata, int]:
    from docx.opc.part import PartFactory
    from docx.package import Package
    from docx.parts.document import DocumentPart
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    # Not `docx.Document(path)`: it refuses macro-enabled documents (.docm) and templates,
    # whose main part is the same WordprocessingML under another content type.
    for content_type in _WORD_MAIN_TYPES:
        PartFactory.part_type_for.setdefault(content_type, DocumentPart)
    document = Package.open(path).main_document_part.document
    metadata = core_metadata(document.core_properties)
    # Style names by id, once: `paragraph.style` looks the style up anew for every paragraph.
    try:
        styles = {style.style_id: str(style.name or "") for style in document.styles}
    except (KeyError, ValueError, AttributeError):
        styles = {}
    headings: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    images = _docx_images(document)

    def locator() -> Locator:
        return Locator(headings=tuple(text for _level, text in headings))

    def flush() -> None:
        if paragraphs:
            builder.section("\n".join(paragraphs), locator())
            paragraphs.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            flush()
            builder.table(_docx_rows(block), locator())
            continue
        assert isinstance(block, Paragraph)
        level = _heading_level(block, styles)
        text = _paragraph_text(block)
        for rel_id in block._p.iter(_A_BLIP):
            image = images.pop(rel_id.get(_R_EMBED, ""), None)
            if image is not None:
                builder.picture(image[1], locator(), image[0])
        if level and text.strip():
            flush()
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, " ".join(text.split())))
            continue
        if text.strip():
            paragraphs.append(text)
    flush()
    for name, blob in images.values():  # pictures in headers, footers or text boxes
        builder.picture(blob, Locator(), name)
    return metadata, 0


def _heading_level(paragraph: Any, styles: dict[str, str]) -> int:
    style_id = paragraph._p.style  # None: the default paragraph style
    name = styles.get(style_id, "") if style_id else ""
    if name.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(name.strip())
    if match:
        return int(match.group(1))
    # An outline level set on the paragraph itself (w:outlineLvl, 0-based).
    levels = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    if levels and str(levels[0]).isdigit() and int(levels[0]) < 9:
        return int(levels[0]) + 1
    return 0


def _paragraph_text(paragraph: Any) -> str:
    text: str = paragraph.text
    # Text boxes (w:txbxContent) are inside runs' drawings; python-docx's text skips them.
    boxes = paragraph._p.xpath(".//w:txbxContent//w:p")
    if boxes:
        box_text = "\n".join("".join(node.text or "" for node in p.iter(f"{_W}t")) for p in boxes)
        text = f"{text}\n{box_text}" if text else box_text
    return text


def _docx_rows(table: Any) -> Iterator[list[str]]:
    for row in table.rows:
        yield [cell.text for cell in row.cells]


def _docx_images(document: Any) -> dict[str, tuple[str, bytes]]:
    """The main part's image relationships: rId -> (part name, bytes)."""
    images: dict[str, tuple[str, bytes]] = {}
    for rel_id, rel in document.part.rels.items():
        if rel.is_external or not rel.reltype.endswith("/image"):
            continue
        part = rel.target_part
        images[rel_id] = (str(part.partname).lstrip("/"), part.blob)
    return images


# --- PowerPoint ---------------------------------------------------------------------------


def parse_pptx(path: str, builder: Builder) -> tuple[Metadata, int]:
    import pptx

    presentation = pptx.Presentation(path)
    metadata = core_metadata(presentation.core_properties)
    slides = list(presentation.slides)
    for number, slide in enumerate(slides, start=1):
        title = ""
        try:
            title_shape = slide.shapes.title
            title = " ".join((title_shape.text_frame.text if title_shape is not None else "").split())
            title_id = title_shape.shape_id if title_shape is not None else None
            locator = Locator(page=number, title=title)
            texts: list[str] = []
            for shape in _shapes(slide.shapes):
                if shape.has_text_frame and shape.shape_id != title_id:
                    texts.append(shape.text_frame.text.replace("\x0b", "\n"))  # \v: a line break
                if getattr(shape, "has_table", False) and shape.has_table:
                    rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
                    builder.table(rows, locator)
                if shape.shape_type == 13:  # MSO_SHAPE_TYPE.PICTURE
                    image = shape.image
                    builder.picture(image.blob, locator, f"slide {number}: {image.filename}")
            body = "\n".join(text for text in texts if text.strip())
            builder.section(f"{title}\n{body}" if title else body, locator)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    builder.section(notes.text, locator)
        except (KeyError, ValueError, AttributeError, TypeError, IndexError, zipfile.BadZipFile) as exc:
            builder.failed(Locator(page=number, title=title), f"slide {number}", exc)
    return metadata, len(slides)


def _shapes(shapes: Any) -> Iterator[Any]:
    """Shapes in order, group shapes opened (iteratively: groups can nest deeply)."""
    stack = [iter(shapes)]
    while stack:
        shape = next(stack[-1], None)
        if shape is None:
            stack.pop()
            continue
        if shape.shape_type == 6 and len(stack) < 32:  # MSO_SHAPE_TYPE.GROUP
            stack.append(iter(shape.shapes))
            continue
        yield shape


# --- Excel --------------------------------------------------------------------------------


def parse_xlsx(path: str, builder: Builder, archive: zipfile.ZipFile) -> tuple[Metadata, int]:
    import openpyxl

    # A file object, not the path: openpyxl refuses a path whose name does not end in .xlsx
    # (an upload, an attachment, a file named by its owner), whatever its content.
    handle = open(path, "rb")  # noqa: SIM115 - read-only mode reads it lazily, closed below
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True, keep_links=False)
    except BaseException:
        handle.close()
        raise
    try:
        metadata = core_metadata(workbook.properties)
        for sheet in workbook.worksheets:
            sections = SheetSections(builder, sheet.title)
            try:
                # The dimension a file declares can be wrong (then read-only mode would skip
                # rows) or huge (then every row is padded to it): go by the rows there are.
                sheet.reset_dimensions()
                number = 0
                for row in sheet.iter_rows():
                    number = next((cell.row for cell in row if getattr(cell, "row", None)), number + 1)
                    sections.add(number, [_cell_text(cell.value) for cell in row])
                sections.flush()
            except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
                builder.failed(Locator(sheet=sheet.title), f'sheet "{sheet.title}"', exc)
        for sheet_name, name, blob in _xlsx_images(archive):
            builder.picture(blob, Locator(sheet=sheet_name), name)
    finally:
        workbook.close()
        handle.close()
    return metadata, 0


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    return str(value)


_SHEET = re.compile(rb'<sheet\b[^>]*?\bname="([^"]*)"[^>]*?\br:id="([^"]+)"')
_REL_ID = re.compile(rb'<Relationship\b[^>]*?\bId="([^"]+)"[^>]*?\bTarget="([^"]+)"')


def _xlsx_images(archive: zipfile.ZipFile) -> Iterator[tuple[str, str, bytes]]:
    """(sheet name, member name, bytes) of each picture drawn on a sheet: workbook -> sheet ->
    drawing -> media, through the relationship parts."""
    names = set(archive.namelist())

    def rels_of(part: str) -> dict[str, str]:
        rels = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
        if rels not in names:
            return {}
        found = {}
        for rel_id, target in _REL_ID.findall(archive.read(rels)):
            target_text = target.decode("utf-8", "replace")
            found[rel_id.decode()] = posixpath.normpath(
                target_text.lstrip("/") if target_text.startswith("/")
                else posixpath.join(posixpath.dirname(part), target_text))
        return found

    if "xl/workbook.xml" not in names:
        return
    sheet_targets = rels_of("xl/workbook.xml")
    seen: set[str] = set()
    for name, rel_id in _SHEET.findall(archive.read("xl/workbook.xml")):
        sheet_part = sheet_targets.get(rel_id.decode())
        if not sheet_part:
            continue
        for drawing in rels_of(sheet_part).values():
            if "drawings/" not in drawing:
                continue
            for media in rels_of(drawing).values():
                if media in names and media not in seen and "/media/" in media:
                    seen.add(media)
                    yield _xml_unescape(name.decode("utf-8", "replace")), media, archive.read(media)


def _xml_unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))
