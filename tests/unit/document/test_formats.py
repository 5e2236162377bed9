"""Every format, on files made by pandoc, LibreOffice, Python's email and Aspose.Email FOSS:
the sniffed kind, the text, the locators, the metadata and the pictures."""

from __future__ import annotations

from pathlib import Path

import pytest

import docmaker
from sensorium.document import engine, sniff
from sensorium.document.api import Document, DocumentKind, ParseOptions, SectionKind

NAMES = ["report.docx", "report.docm", "report.odt", "report.epub", "report.html", "report.rtf",
         "report.rst", "report.adoc", "report.md", "report.doc", "slides.pptx", "slides.pptm",
         "slides.odp", "slides.ppt", "budget.xlsx", "budget.xlsm", "budget.ods", "budget.xls",
         "notes.txt", "latin1.txt", "utf16.txt", "ships.csv", "ships.tsv", "talk.vtt", "talk.srt",
         "dues.eml", "forward.eml", "roster.msg"]


def parse(path: Path) -> Document:
    sniffed = sniff.sniff(path.read_bytes()[: sniff.HEAD_BYTES], path)
    assert sniffed.kind is not None, sniffed.message
    return engine.parse(path, sniffed.kind)


def section_with(document: Document, phrase: str):
    found = [s for s in document.sections if phrase in " ".join(s.text.split())]
    assert found, f"{phrase!r} not in any section: {[s.text for s in document.sections]}"
    return found[0]


@pytest.mark.parametrize("name", NAMES)
def test_each_format_yields_its_text_locators_and_metadata(generated, name):
    folder, expected = generated
    want = expected[name]
    path = folder / name
    sniffed = sniff.sniff(path.read_bytes()[: sniff.HEAD_BYTES], path)
    assert sniffed.kind == DocumentKind(want.kind)
    document = engine.parse(path, sniffed.kind)
    assert not [s.error for s in document.sections if s.error], "no part of a clean file fails"
    for phrase in want.phrases:
        section = section_with(document, phrase)
        if phrase in want.locators:
            assert want.locators[phrase] in section.locator.describe(), section.locator
    if want.title:
        assert document.metadata.title == want.title
    if want.author:
        assert want.author in document.metadata.author
    embeddable = [p for p in document.pictures if p.error is None]
    assert len(embeddable) >= want.pictures
    for picture in embeddable:
        assert (picture.format, picture.width, picture.height) == ("png", 64, 64)
        assert picture.data.startswith(b"\x89PNG")


def test_a_table_is_a_line_per_row_with_its_header_cells(generated):
    document = parse(generated[0] / "report.docx")
    table = next(s for s in document.sections if s.kind is SectionKind.TABLE)
    assert table.text.splitlines() == [
        "Ship | Tonnage | Port",
        "Ship: Marigold | Tonnage: 1200 | Port: Lisbon",
        "Ship: Osprey | Tonnage: 860 | Port: Bergen",
    ]
    assert table.locator.headings == ("Results",)


def test_slides_count_as_pages_and_keep_their_titles_and_notes(generated):
    document = parse(generated[0] / "slides.pptx")
    assert document.page_count == 4
    notes = section_with(document, "pelican colony")
    assert (notes.locator.page, notes.locator.title) == (2, "Harbour overview")  # 1: the title slide
    picture = next(p for p in document.pictures if p.error is None)
    assert (picture.locator.page, picture.locator.title) == (4, "Pictures")


def test_legacy_office_is_converted_with_libreoffice(generated):
    document = parse(generated[0] / "slides.ppt")
    assert document.kind is DocumentKind.PPT and document.converted_with == "libreoffice"


def test_subtitle_cues_keep_their_times(generated):
    document = parse(generated[0] / "talk.vtt")
    cue = section_with(document, "crane lifts forty tonnes")
    assert (cue.locator.start_seconds, cue.locator.end_seconds) == (62.5, 65.0)
    assert "<b>" not in document.text


def test_mail_attachments_become_files_of_their_own(generated):
    folder = generated[0]
    document = engine.parse(folder / "dues.eml", DocumentKind.EML, name="inbox/dues.eml")
    assert [(a.path, a.error) for a in document.attachments] == [
        ("inbox/dues.eml!/report.docx", None), ("inbox/dues.eml!/notes.txt", None)]
    assert document.attachments[0].data == (folder / "report.docx").read_bytes()
    assert document.metadata.modified is not None and document.metadata.modified.year == 2024


def test_an_attached_mail_is_a_file_and_its_own_attachments_go_no_deeper(generated, tmp_path):
    outer = engine.parse(generated[0] / "forward.eml", DocumentKind.EML, name="forward.eml")
    (attached,) = outer.attachments
    assert attached.path == "forward.eml!/Forwarded: crane schedule.eml"
    inner_path = tmp_path / "inner.eml"
    inner_path.write_bytes(attached.data)
    assert sniff.sniff(attached.data[:8192], inner_path).kind is DocumentKind.EML
    inner = engine.parse(inner_path, DocumentKind.EML, name=attached.path, attached=True)
    assert "crane is booked on Monday" in inner.text
    (deeper,) = inner.attachments
    assert deeper.data == b"" and deeper.error is not None and "one level deep" in deeper.error.message


def test_outlook_msg_yields_subject_body_and_attachment(generated):
    document = engine.parse(generated[0] / "roster.msg", DocumentKind.MSG, name="roster.msg")
    assert document.metadata.title == "Pilot roster for April"
    (attachment,) = document.attachments
    assert (attachment.path, attachment.data) == ("roster.msg!/roster.txt", b"Grace: Monday\n")


def test_expected_set_covers_every_listed_kind(generated):
    kinds_made = {DocumentKind(e.kind) for e in generated[1].values()}
    assert kinds_made == set(DocumentKind)


def test_docmaker_names_match(generated):
    assert sorted(generated[1]) == sorted(NAMES)
    assert isinstance(generated[1]["report.docx"], docmaker.Expected)


def test_a_cell_range_starts_at_the_first_column_with_text(tmp_path):
    path = tmp_path / "offset.csv"
    path.write_text(",,\n,Name,Role\n,Ada,Pilot\n", encoding="utf-8")
    (section,) = engine.parse(path, DocumentKind.CSV).sections
    assert section.locator.cells == "B2:C3"
    assert section.text.splitlines() == ["Name | Role", "Name: Ada | Role: Pilot"]


def test_a_file_without_its_name_reads_the_same(generated, tmp_path):
    """Uploads and attachments arrive under other names: the content decides, and every
    library must read a file whatever it is called (openpyxl insists on .xlsx by itself)."""
    folder, expected = generated
    by_name = {"markdown", "asciidoc", "rst", "csv", "tsv"}  # plain text whose name tells them apart
    for name, want in expected.items():
        if want.kind in by_name:
            continue
        blob = tmp_path / "upload-1234"
        blob.write_bytes((folder / name).read_bytes())
        named = engine.read(folder / name, ParseOptions(name=name))
        anonymous = engine.read(blob, ParseOptions())
        assert anonymous.kind == named.kind, name
        assert [s.text for s in anonymous.sections] == [s.text for s in named.sections], name
