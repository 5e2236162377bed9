"""The PDF extractor: pure functions, run in this process."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pymupdf
import pytest

import testkit
from enginekit import extract_document
from sensorium.errors import Reason, SensoriumError, explain_setting
from sensorium.pdf import extractor
from sensorium.pdf.api import DocumentInfo, ExtractOptions, ImageResult, OcrStatus, PageResult
from sensorium.pdf.extractor import (
    Limits,
    open_document,
    parse_pdf_date,
    read_info,
    resolve_range,
    saslprep,
)

LEFT = [f"Left column line {i}." for i in range(1, 9)]
RIGHT = [f"Right column line {i}." for i in range(1, 9)]
NO_OCR_DATA = Limits(tessdata_dir="/nonexistent/tessdata")


def extract(path: Path, options: ExtractOptions | None = None, limits: Limits | None = None):
    items = list(extract_document(path, options or ExtractOptions(), limits or Limits()))
    info = items[0]
    assert isinstance(info, DocumentInfo)
    pages = [i for i in items if isinstance(i, PageResult)]
    images = [i for i in items if isinstance(i, ImageResult)]
    return info, pages, images


def reason_of(excinfo: pytest.ExceptionInfo[SensoriumError]) -> Reason:
    return excinfo.value.reason


# --- reading order, blocks, geometry -------------------------------------------------------


def test_reading_order_keeps_columns_whole(two_column_pdf: Path) -> None:
    _, (page,), _ = extract(two_column_pdf)
    lines = page.text.splitlines()
    assert lines == LEFT + RIGHT  # the whole left column, then the whole right column


def test_sorted_extraction_would_interleave_columns(two_column_pdf: Path) -> None:
    # Why the extractor keeps PyMuPDF's default: sort=True mixes the two columns line by line.
    with pymupdf.open(two_column_pdf) as doc:
        first_line = doc[0].get_text(sort=True).splitlines()[0]
    assert "Left column line 1." in first_line and "Right column line 1." in first_line


def test_blocks_carry_text_and_boxes_inside_the_page(two_column_pdf: Path) -> None:
    _, (page,), _ = extract(two_column_pdf, ExtractOptions(include_blocks=True))
    assert page.blocks, "include_blocks returns blocks"
    assert "\n".join(b.text for b in page.blocks) == page.text
    for block in page.blocks:
        assert 0 <= block.bbox.x0 < block.bbox.x1 <= page.width
        assert 0 <= block.bbox.y0 < block.bbox.y1 <= page.height
    left = [b for b in page.blocks if b.text.startswith("Left")]
    right = [b for b in page.blocks if b.text.startswith("Right")]
    assert max(b.bbox.x1 for b in left) < min(b.bbox.x0 for b in right)


def test_blocks_are_omitted_unless_asked_for(two_column_pdf: Path) -> None:
    _, (page,), _ = extract(two_column_pdf)
    assert page.blocks == [] and page.text


def test_rotated_page_reports_displayed_geometry(rotated_pdf: Path) -> None:
    _, (page,), _ = extract(rotated_pdf, ExtractOptions(include_blocks=True))
    assert (page.width, page.height) == (400, 600)  # the 600 x 400 page turned by 90 degrees
    (block,) = page.blocks
    assert block.text == "Rotated text"
    assert 0 <= block.bbox.x0 < block.bbox.x1 <= 400 and 0 <= block.bbox.y0 < block.bbox.y1 <= 600
    # Horizontal text on a page turned by 90 degrees runs down the displayed page.
    assert block.bbox.y1 - block.bbox.y0 > block.bbox.x1 - block.bbox.x0


# --- metadata ------------------------------------------------------------------------------


def test_metadata(tmp_path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((50, 60), "x")
    doc.set_metadata(
        {
            "title": "  A title ",
            "author": "An author",
            "subject": "A subject",
            "keywords": "a, b",
            "creator": "A creator",
            "producer": "A producer",
            "creationDate": "D:20230101120000+01'00'",
            "modDate": "D:20240229235959Z",
        }
    )
    doc.save(tmp_path / "meta.pdf")
    info, _, _ = extract(tmp_path / "meta.pdf")
    assert (info.title, info.author, info.subject, info.keywords) == (
        "A title",
        "An author",
        "A subject",
        "a, b",
    )
    assert (info.creator, info.producer) == ("A creator", "A producer")
    assert info.creation_time == datetime(2023, 1, 1, 11, 0, tzinfo=UTC)
    assert info.modification_time == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    assert info.page_count == 1
    assert info.pdf_version == "1.7"
    assert not info.encrypted and not info.repaired


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("D:20230101120000+01'00'", datetime(2023, 1, 1, 12, tzinfo=timezone(timedelta(hours=1)))),
        ("D:20121229164910-05'00'", datetime(2012, 12, 29, 16, 49, 10, tzinfo=timezone(timedelta(hours=-5)))),
        ("D:20230623063933Z", datetime(2023, 6, 23, 6, 39, 33, tzinfo=UTC)),
        ("D:20230623063933Z00'00'", datetime(2023, 6, 23, 6, 39, 33, tzinfo=UTC)),
        ("D:20220415120659", datetime(2022, 4, 15, 12, 6, 59, tzinfo=UTC)),
        ("D:2023", datetime(2023, 1, 1, tzinfo=UTC)),
        ("20230102", datetime(2023, 1, 2, tzinfo=UTC)),
        ("D:20230101120000+0530", datetime(2023, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
        ("", None),
        ("yesterday", None),
        ("D:20231341", None),  # month 13
    ],
)
def test_parse_pdf_date(value: str, expected: datetime | None) -> None:
    parsed = parse_pdf_date(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


# --- page ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (0, 0, range(0, 10)),
        (3, 0, range(2, 10)),
        (0, 4, range(0, 4)),
        (5, 5, range(4, 5)),
        (10, 10, range(9, 10)),
    ],
)
def test_resolve_range(first: int, last: int, expected: range) -> None:
    assert resolve_range(10, first, last) == expected


@pytest.mark.parametrize(("first", "last"), [(11, 0), (0, 11), (3, 12)])
def test_range_past_the_end(first: int, last: int) -> None:
    with pytest.raises(SensoriumError) as excinfo:
        resolve_range(10, first, last)
    assert reason_of(excinfo) == Reason.PAGE_OUT_OF_RANGE
    assert "has 10 pages" in excinfo.value.message


def test_range_backwards() -> None:
    with pytest.raises(SensoriumError) as excinfo:
        resolve_range(10, 5, 3)
    assert reason_of(excinfo) == Reason.INVALID_REQUEST


def test_extract_a_page_range(make_text_pdf: Any) -> None:
    info, pages, _ = extract(make_text_pdf(6), ExtractOptions(first_page=2, last_page=4))
    assert info.page_count == 6
    assert [p.page_number for p in pages] == [2, 3, 4]
    assert all(p.text.startswith(f"Page {p.page_number}\n") for p in pages)


# --- documents that cannot be opened --------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(SensoriumError) as excinfo:
        open_document(tmp_path / "empty.pdf")
    assert reason_of(excinfo) == Reason.INPUT_EMPTY


@pytest.mark.parametrize("content", [b"%PDF", b"hello, this is not a PDF at all\n" * 20, b"\x00" * 100])
def test_garbage_is_unreadable(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.pdf").write_bytes(content)
    with pytest.raises(SensoriumError) as excinfo:
        open_document(tmp_path / "x.pdf")
    assert reason_of(excinfo) in (Reason.PDF_UNREADABLE, Reason.PDF_NO_PAGES)


def test_text_file_is_not_opened_as_a_text_document(tmp_path: Path) -> None:
    # Without filetype="pdf" MuPDF would open this as a one-page plain-text document.
    (tmp_path / "notes.txt").write_text("just some notes\n")
    with pytest.raises(SensoriumError) as excinfo:
        open_document(tmp_path / "notes.txt")
    assert reason_of(excinfo) == Reason.PDF_UNREADABLE


CATALOG = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
EMPTY_PAGES = b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"


def test_document_without_pages(tmp_path: Path) -> None:
    xref = b"xref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000058 00000 n \n"
    trailer = b"trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n109\n%%EOF\n"
    (tmp_path / "no-pages.pdf").write_bytes(CATALOG + EMPTY_PAGES + xref + trailer)
    with pytest.raises(SensoriumError) as excinfo:
        open_document(tmp_path / "no-pages.pdf")
    assert reason_of(excinfo) == Reason.PDF_NO_PAGES
    assert "repair" not in excinfo.value.message


def test_truncated_document_is_repaired_to_no_pages(tmp_path: Path) -> None:
    (tmp_path / "truncated.pdf").write_bytes(CATALOG + EMPTY_PAGES)  # no xref, no trailer
    with pytest.raises(SensoriumError) as excinfo:
        open_document(tmp_path / "truncated.pdf")
    assert reason_of(excinfo) == Reason.PDF_NO_PAGES
    assert "repair" in excinfo.value.message


def test_damaged_xref_is_repaired_and_reported(tmp_path: Path, make_text_pdf: Any) -> None:
    data = make_text_pdf(2).read_bytes()
    damaged = data.replace(b"startxref", b"startxreX")
    (tmp_path / "damaged.pdf").write_bytes(damaged)
    info, pages, _ = extract(tmp_path / "damaged.pdf")
    assert info.repaired
    assert [p.text.splitlines()[0] for p in pages] == ["Page 1", "Page 2"]


def test_too_many_pages(make_text_pdf: Any) -> None:
    with pytest.raises(SensoriumError) as excinfo:
        list(extract_document(make_text_pdf(3), ExtractOptions(), Limits(max_pages=2)))
    assert reason_of(excinfo) == Reason.PDF_TOO_MANY_PAGES
    assert excinfo.value.setting == "pdf.max_pages"


# --- passwords -----------------------------------------------------------------------------


def test_password_required(make_encrypted_pdf: Any) -> None:
    with pytest.raises(SensoriumError) as excinfo:
        open_document(make_encrypted_pdf("secret"))
    assert reason_of(excinfo) == Reason.PDF_PASSWORD_REQUIRED
    assert "options.password" in excinfo.value.message


def test_password_incorrect(make_encrypted_pdf: Any) -> None:
    with pytest.raises(SensoriumError) as excinfo:
        open_document(make_encrypted_pdf("secret"), "guess")
    assert reason_of(excinfo) == Reason.PDF_PASSWORD_INCORRECT


@pytest.mark.parametrize(
    "method", [pymupdf.PDF_ENCRYPT_AES_256, pymupdf.PDF_ENCRYPT_AES_128, pymupdf.PDF_ENCRYPT_RC4_128]
)
def test_user_and_owner_passwords_open_the_document(make_encrypted_pdf: Any, method: int) -> None:
    path = make_encrypted_pdf("secret", method)
    for password in ("secret", "owner-secret"):
        info, (page,), _ = extract(path, ExtractOptions(password=password))
        assert info.encrypted and info.title == "Secret title" and page.text == "Secret text"


def test_aes256_password_is_saslprepped(make_encrypted_pdf: Any) -> None:
    # A conforming writer stores the SASLprep'd (NFKC) password; a user may type a decomposed
    # form (macOS keyboards produce NFD), which only matches after SASLprep.
    stored = unicodedata.normalize("NFC", "pässwörd")
    typed = unicodedata.normalize("NFD", stored)
    assert typed != stored
    path = make_encrypted_pdf(stored)
    with pymupdf.open(path) as raw:
        assert not raw.authenticate(typed), "MuPDF itself does not SASLprep"
    info, (page,), _ = extract(path, ExtractOptions(password=typed))
    assert page.text == "Secret text" and info.page_count == 1


@pytest.mark.parametrize(
    "typed", ["I\u00adX", "\u2168"]
)  # soft hyphen (mapped to nothing); ROMAN NUMERAL NINE
def test_saslprep_mapping_opens_the_document(make_encrypted_pdf: Any, typed: str) -> None:
    path = make_encrypted_pdf("IX")
    _, (page,), _ = extract(path, ExtractOptions(password=typed))
    assert page.text == "Secret text"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 4013 section 3 examples.
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
        ("\u0007", None),  # prohibited control character
        ("\u0627\u0031", None),  # bidi: RandALCat string must end with a RandALCat character
        # Non-ASCII spaces map to SPACE.
        ("a\u00a0b", "a b"),
        ("\u0627\u0628", "\u0627\u0628"),
    ],
)
def test_saslprep(value: str, expected: str | None) -> None:
    assert saslprep(value) == expected


# --- pages without text, OCR -------------------------------------------------------------------


def test_page_without_text_layer_is_flagged_and_skipped(scanned_pdf: Path) -> None:
    _, (scanned, typed), _ = extract(scanned_pdf, ExtractOptions(ocr=False))
    assert not scanned.has_text_layer and scanned.text == ""
    assert scanned.ocr_status == OcrStatus.SKIPPED
    assert typed.has_text_layer and typed.ocr_status == OcrStatus.NOT_NEEDED


def test_ocr_disabled_on_the_server(scanned_pdf: Path) -> None:
    _, (scanned, _), _ = extract(scanned_pdf, limits=Limits(ocr_enabled=False))
    assert scanned.ocr_status == OcrStatus.UNAVAILABLE
    assert "SENSORIUM_PDF__OCR" in _worded(scanned)


def test_ocr_not_installed_names_the_fix(scanned_pdf: Path) -> None:
    _, (scanned, _), _ = extract(scanned_pdf, limits=NO_OCR_DATA)
    assert scanned.ocr_status == OcrStatus.UNAVAILABLE
    assert "tesseract-ocr-eng" in scanned.ocr_message
    assert "SENSORIUM_PDF__TESSDATA_DIR" in _worded(scanned)
    assert "/nonexistent" not in _worded(scanned)  # no server path reaches a client


def test_ocr_pixel_limit_is_checked_before_rendering(scanned_pdf: Path, tmp_path: Path) -> None:
    # A stand-in language file passes the installation check; the pixel check comes first,
    # so Tesseract never reads it.
    (tmp_path / "eng.traineddata").write_bytes(b"")
    limits = Limits(tessdata_dir=str(tmp_path), max_pixels=10_000)
    _, (scanned, _), _ = extract(scanned_pdf, limits=limits)
    assert scanned.ocr_status == OcrStatus.FAILED
    assert "SENSORIUM_PDF__MAX_PIXELS" in _worded(scanned)


def _worded(page: PageResult) -> str:
    """The OCR message as a front end words it: the engine names the setting, not its variable."""
    return explain_setting(page.ocr_message, page.ocr_setting, "client")


@pytest.mark.ocr
def test_ocr_reads_a_scanned_page(scanned_pdf: Path) -> None:
    tessdata, problem = extractor.find_tessdata(None, "eng")
    if tessdata is None:
        pytest.skip(problem)
    _, (scanned, typed), _ = extract(scanned_pdf, ExtractOptions(include_blocks=True))
    assert scanned.ocr_status == OcrStatus.APPLIED, scanned.ocr_message
    assert not scanned.has_text_layer
    assert "Hello OCR World" in scanned.text
    assert scanned.blocks
    assert typed.ocr_status == OcrStatus.NOT_NEEDED


# --- images --------------------------------------------------------------------------------


def test_images_are_extracted_after_their_page(images_pdf: Path) -> None:
    items = list(extract_document(images_pdf, ExtractOptions(include_images=True), Limits()))
    kinds = [type(item).__name__ for item in items]
    assert kinds == ["DocumentInfo", "PageResult", "ImageResult", "ImageResult", "PageResult"]
    page, flate, jpeg = items[1], items[2], items[3]
    assert isinstance(page, PageResult) and page.image_count == 2
    assert isinstance(flate, ImageResult) and isinstance(jpeg, ImageResult)
    assert (flate.index, flate.format, flate.width, flate.height) == (0, "png", 40, 30)
    assert flate.data.startswith(b"\x89PNG") and flate.error is None
    assert (jpeg.index, jpeg.format, jpeg.width, jpeg.height) == (1, "jpeg", 64, 48)
    assert jpeg.data.startswith(b"\xff\xd8")  # the stored JPEG, not re-encoded
    assert jpeg.bbox is not None
    assert (jpeg.bbox.x0, jpeg.bbox.y0, jpeg.bbox.x1, jpeg.bbox.y1) == pytest.approx((300, 100, 364, 148))


def test_images_are_not_even_counted_unless_asked_for(images_pdf: Path) -> None:
    _, pages, images = extract(images_pdf)
    assert [p.image_count for p in pages] == [0, 0]
    assert images == []
    _, pages, _ = extract(images_pdf, ExtractOptions(include_images=True))
    assert [p.image_count for p in pages] == [2, 0]


def test_image_pixel_limit(images_pdf: Path) -> None:
    _, _, images = extract(images_pdf, ExtractOptions(include_images=True), Limits(max_pixels=2000))
    small, large = images
    assert small.error is None  # 40 x 30 = 1,200 pixels
    assert large.error is not None and large.error.reason == Reason.IMAGE_TOO_LARGE
    assert large.data == b"" and large.error.setting == "pdf.max_pixels"


def test_image_bomb_is_refused_before_decoding(bomb_pdf: Path) -> None:
    _, (page,), (image,) = extract(bomb_pdf, ExtractOptions(include_images=True))
    assert page.text == "A decompression bomb"
    assert image.error is not None and image.error.reason == Reason.IMAGE_TOO_LARGE
    assert (image.width, image.height) == (100_000, 100_000)


# --- a broken page -------------------------------------------------------------------------


def test_a_failing_page_does_not_fail_the_others(make_text_pdf: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pymupdf.Page.get_textpage

    def get_textpage(page: pymupdf.Page, *args: Any, **kwargs: Any) -> Any:
        if page.number == 1:
            raise pymupdf.mupdf.FzErrorFormat("syntax error in content stream")
        return real(page, *args, **kwargs)

    monkeypatch.setattr(pymupdf.Page, "get_textpage", get_textpage)
    _, pages, _ = extract(make_text_pdf(3))
    assert [p.error is None for p in pages] == [True, False, True]
    broken = pages[1]
    assert broken.error is not None and broken.error.reason == Reason.PDF_PAGE_FAILED
    assert broken.page_number == 2 and broken.text == ""
    assert pages[2].text.startswith("Page 3")


# --- MuPDF behaviour the extractor relies on ----------------------------------------------------


def _check_r6_page_count_quirk(path: Path, user: str, owner: str, pages: int) -> None:
    pymupdf.TOOLS.mupdf_display_errors(False)
    try:
        with pymupdf.open(path) as doc:
            assert doc.page_count == 0
            assert doc.authenticate(user)
            assert doc.page_count == 0, "MuPDF fixed the quirk; open_document's order still works"
        with pymupdf.open(path) as doc:
            assert doc.authenticate(user) and doc.page_count == pages
    finally:
        pymupdf.TOOLS.mupdf_display_errors(True)
    for password in (user, owner):
        with open_document(path, password) as doc:
            assert read_info(doc).page_count == pages


def test_mupdf_r6_page_count_quirk(tmp_path: Path) -> None:
    """Canary: MuPDF 1.28 loses an AES-256 document's pages when `page_count` is read before
    authenticating — the reason `open_document` authenticates first."""
    path = tmp_path / "r6.pdf"
    path.write_bytes(testkit.make_r6_pdf(30, user_password="view", owner_password="master"))
    _check_r6_page_count_quirk(path, "view", "master", 30)


def test_corpus_mupdf_r6_page_count_quirk(corpus_dir: Path) -> None:
    """The same canary on qpdf's AES-256 R6 test file."""
    path = corpus_dir / "pdf" / "qpdf_enc-R6-V5-user-view-owner-master.pdf"
    _check_r6_page_count_quirk(path, "view", "master", 30)


def test_right_to_left_text_comes_out_in_reading_order(tmp_path: Path) -> None:
    """Arabic set by MuPDF's own layout engine (built-in Noto Naskh Arabic): the text comes out
    in logical order, as typed, not in the visual order it is drawn in; MuPDF reports the shaped
    (presentation) forms, which NFKC maps back to the letters."""
    word = "\u062d\u064e\u0628\u064a\u0628\u064a"  # habibi
    doc = pymupdf.open()
    doc.new_page().insert_htmlbox(pymupdf.Rect(50, 50, 400, 200), f'<div dir="rtl">{word} habibi</div>')
    path = tmp_path / "arabic.pdf"
    doc.save(path)
    _, (page,), _ = extract(path)
    assert "habibi" in page.text
    assert word in unicodedata.normalize("NFKC", page.text)
    assert word[::-1] not in unicodedata.normalize("NFKC", page.text)


def test_every_page_rotation_reports_displayed_geometry(tmp_path: Path) -> None:
    doc = pymupdf.open()
    for rotation in (90, 180, 270, 0):
        page = doc.new_page(width=600, height=400)
        page.insert_text((50, 60), f"Turned by {rotation}")
        page.set_rotation(rotation)
    path = tmp_path / "rotations.pdf"
    doc.save(path)
    _, pages, _ = extract(path)
    assert [(p.width, p.height) for p in pages] == [(400, 600), (600, 400), (400, 600), (600, 400)]
    assert [p.text for p in pages] == [f"Turned by {r}" for r in (90, 180, 270, 0)]


# --- the real-world corpus -----------------------------------------------------------------


def test_corpus(corpus_dir: Path, corpus_pdf: dict[str, Any]) -> None:
    expected = corpus_pdf["expected"]
    path = corpus_dir / corpus_pdf["file"]
    password = expected.get("user_password", "")
    if expected.get("should_fail"):
        with pytest.raises(SensoriumError) as excinfo:
            list(extract_document(path, ExtractOptions(), NO_OCR_DATA))
        assert reason_of(excinfo) in (Reason.PDF_UNREADABLE, Reason.PDF_NO_PAGES)
        return
    if expected.get("needs_password"):
        with pytest.raises(SensoriumError) as excinfo:
            open_document(path)
        assert reason_of(excinfo) == Reason.PDF_PASSWORD_REQUIRED
        with open_document(path, expected["owner_password"]) as doc:
            assert doc.page_count > 0
    info, pages, images = extract(path, ExtractOptions(password=password, include_images=True), NO_OCR_DATA)
    if "pages" in expected:
        assert info.page_count == expected["pages"] == len(pages)
    if "encrypted" in expected:
        assert info.encrypted == expected["encrypted"]
    text = "\n".join(p.text for p in pages)
    flat = " ".join(text.split())
    for snippet in expected.get("text_contains", []):
        assert " ".join(snippet.split()) in flat
    if "text_contains_rtl" in expected:
        assert expected["text_contains_rtl"] in text
    if expected.get("text") == "":
        assert not any(p.has_text_layer for p in pages)
        assert all(p.ocr_status == OcrStatus.UNAVAILABLE for p in pages)
    if "images" in expected:
        assert len(images) == expected["images"] and all(i.data for i in images)
    if "rotations" in expected:
        for page, rotation in zip(pages, expected["rotations"], strict=True):
            portrait = page.height > page.width
            assert portrait == (rotation % 180 == 0)
    assert all(p.error is None for p in pages)
    assert all(i.error is None for i in images)


# --- normalised text (sensorium.text) ------------------------------------------------------

HYPHENATED_PDF = Path(__file__).parents[2] / "data" / "hyphenated.pdf"
"""Prose laid out by LibreOffice on a narrow page, hyphenation on (bench/textcorpus.py)."""
BROKEN_WORDS = ("justified", "extraordinarily", "administrative", "notwithstanding",
                "characteristically", "internationalisation", "incomprehensibility", "acknowledgements",
                "recommendations", "scientific", "electroencephalography", "photosynthesis",
                "spectrophotometer", "immunohistochemistry", "interface", "wherever")
"""Words of the fixture's text that LibreOffice broke across lines."""
LIGATURE_WORDS = ("efficient", "office", "fluid", "financial", "effective")
COMPOUNDS = ("user-defined", "well-documented", "state-of-the-art", "case-insensitive")


def _words(text: str) -> set[str]:
    return {word.strip(".,:;").lower() for word in text.split()}


def test_words_broken_across_lines_and_ligatures_are_whole_in_the_text() -> None:
    _, (raw,), _ = extract(HYPHENATED_PDF, ExtractOptions(normalize=False))
    _, (page,), _ = extract(HYPHENATED_PDF, ExtractOptions(include_blocks=True))
    # The fixture does break these words and store ligatures: the raw text layer lacks them.
    assert not _words(raw.text) & set(BROKEN_WORDS)
    assert "o\ufb03ce" in raw.text and "e\ufb03-\ncient" in raw.text
    words = _words(page.text)
    assert set(BROKEN_WORDS) <= words
    assert set(LIGATURE_WORDS) <= words
    assert set(COMPOUNDS) <= words  # a compound's own hyphen stays, also where a line ended
    assert not any(0xFB00 <= ord(char) <= 0xFB06 for char in page.text)
    assert page.text == "\n".join(block.text for block in page.blocks)


def test_ocr_text_is_normalised_too(scanned_pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def ocr(page: Any, options: ExtractOptions, limits: Limits) -> tuple[OcrStatus, str, str, list[Any]]:
        return OcrStatus.APPLIED, "", "", [(0.0, 0.0, 10.0, 10.0, "an ef\ufb01cient recog-\nnition\u00ad")]

    monkeypatch.setattr(extractor, "_ocr", ocr)
    _, (scanned, _), _ = extract(scanned_pdf)
    assert scanned.ocr_status == OcrStatus.APPLIED
    assert scanned.text == "an efficient recognition"
