"""PDF fixtures, generated with PyMuPDF itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pymupdf
import pytest

import testkit

LEFT = [f"Left column line {i}." for i in range(1, 9)]
RIGHT = [f"Right column line {i}." for i in range(1, 9)]
SCANNED_TEXT = "Hello OCR World"


def text_pdf(path: Path, pages: int, *, title: str = "", lines: int = 3) -> Path:
    """`pages` pages, each starting "Page N" followed by `lines` lines of text."""
    doc = pymupdf.open()
    body = [f"Line {i}: the quick brown fox jumps over the lazy dog." for i in range(lines)]
    for number in range(1, pages + 1):
        page = doc.new_page()
        page.insert_text((50, 60), [f"Page {number}", *body], fontsize=10)
    if title:
        doc.set_metadata({"title": title})
    doc.save(path, deflate=True)
    return path


@pytest.fixture
def make_text_pdf(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1_000_000))

    def make(pages: int = 2, *, title: str = "", lines: int = 3) -> Path:
        return text_pdf(tmp_path / f"text-{next(counter)}.pdf", pages, title=title, lines=lines)

    return make


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pdfs")


@pytest.fixture(scope="session")
def two_column_pdf(generated: Path) -> Path:
    """One page, two columns side by side; the content stream holds the left column first."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    for i, line in enumerate(LEFT):
        page.insert_text((50, 100 + 20 * i), line)
    for i, line in enumerate(RIGHT):
        page.insert_text((340, 100 + 20 * i), line)
    path = generated / "two-column.pdf"
    doc.save(path)
    return path


@pytest.fixture(scope="session")
def images_pdf(generated: Path) -> Path:
    """Page 1: text, a PNG-stored (Flate) image and a JPEG image; page 2: text only."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((50, 60), "A page with two pictures")
    flate = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 40, 30), False)
    flate.clear_with(90)
    page.insert_image(pymupdf.Rect(50, 100, 250, 250), pixmap=flate)
    jpeg = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 48), False)
    jpeg.clear_with(200)
    page.insert_image(pymupdf.Rect(300, 100, 364, 148), stream=jpeg.tobytes("jpg"))
    doc.new_page().insert_text((50, 60), "No pictures here")
    path = generated / "images.pdf"
    doc.save(path)
    return path


@pytest.fixture(scope="session")
def bomb_pdf(generated: Path) -> Path:
    """An image whose dictionary claims 100,000 x 100,000 pixels (10 gigapixels) in a few bytes."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((50, 60), "A decompression bomb")
    pixmap = pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.IRect(0, 0, 8, 8), False)
    page.insert_image(pymupdf.Rect(50, 100, 150, 200), pixmap=pixmap)
    xref = page.get_images()[0][0]
    doc.xref_set_key(xref, "Width", "100000")
    doc.xref_set_key(xref, "Height", "100000")
    path = generated / "bomb.pdf"
    doc.save(path)
    return path


@pytest.fixture(scope="session")
def scanned_pdf(generated: Path) -> Path:
    """Page 1: only a picture of text (no text layer); page 2: real text."""
    doc = pymupdf.open(stream=testkit.make_scanned_pdf(SCANNED_TEXT), filetype="pdf")
    doc.new_page().insert_text((50, 60), "Typed text")
    path = generated / "scanned.pdf"
    doc.save(path)
    return path


@pytest.fixture(scope="session")
def rotated_pdf(generated: Path) -> Path:
    doc = pymupdf.open()
    page = doc.new_page(width=600, height=400)
    page.insert_text((50, 60), "Rotated text")
    page.set_rotation(90)
    path = generated / "rotated.pdf"
    doc.save(path)
    return path


@pytest.fixture(scope="session")
def make_encrypted_pdf(generated: Path) -> Callable[[str, int], Path]:
    def make(password: str, method: int = pymupdf.PDF_ENCRYPT_AES_256) -> Path:
        doc = pymupdf.open()
        doc.new_page().insert_text((50, 60), "Secret text")
        doc.set_metadata({"title": "Secret title"})
        path = generated / f"encrypted-{abs(hash((password, method)))}.pdf"
        doc.save(path, encryption=method, user_pw=password, owner_pw="owner-" + password)
        return path

    return make


@pytest.fixture(scope="session")
def dense_1000_pdf(generated: Path) -> Path:
    """1,000 pages of about 30 lines each: a long document with realistic work per page."""
    return text_pdf(generated / "dense-1000.pdf", 1000, lines=30)
