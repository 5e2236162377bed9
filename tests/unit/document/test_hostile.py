"""Hostile documents: each gives its reason, and output stays bounded."""

from __future__ import annotations

import zipfile

import pytest

import docmaker
from sensorium.document import engine, guards, legacy, sniff
from sensorium.document.api import DocumentKind
from sensorium.document.guards import Limits
from sensorium.errors import Reason, SensoriumError


def outcome(path, limits=None):
    """The Reason name a file ends with ("" when it parses), as the index would see it."""
    sniffed = sniff.sniff(path.read_bytes()[: sniff.HEAD_BYTES], path)
    if sniffed.kind is None:
        return sniffed.reason.name, None
    try:
        return "", engine.parse(path, sniffed.kind, limits, name=path.name)
    except SensoriumError as error:
        return error.reason.name, error


@pytest.mark.parametrize(
    "name",
    [
        "bomb.docx",
        "laughs.docx",
        "laughs.odt",
        "spans.html",
        "binary.txt",
        "truncated.pptx",
        "locked.docx",
        "nested.eml",
    ],
)
def test_each_hostile_file_gives_its_reason(hostile, name):
    folder, expected = hostile
    reason, _result = outcome(folder / name)
    assert reason == expected[name]


def test_a_zip_bomb_is_refused_before_parsing_with_its_ratio(hostile):
    _reason, error = outcome(hostile[0] / "bomb.docx")
    assert "expands" in error.message and error.metadata["member"] == "word/document.xml"


def test_a_span_bomb_stays_small(hostile):
    _reason, document = outcome(hostile[0] / "spans.html")
    # A converter that fills every spanned slot writes 100 rows x 1000 cells x 96 characters.
    assert 0 < len(document.text) < 20_000


def test_members_and_total_size_are_limited(tmp_path):
    path = tmp_path / "many.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", docmaker._CONTENT_TYPES_DOCX)
        for index in range(30):
            archive.writestr(f"word/part{index}.xml", "<x/>")
    with pytest.raises(SensoriumError) as raised:
        engine.parse(path, DocumentKind.DOCX, Limits(max_zip_members=10))
    assert raised.value.reason is Reason.DOCUMENT_UNSAFE and raised.value.metadata["members"] == "31"
    with pytest.raises(SensoriumError) as raised:
        engine.parse(path, DocumentKind.DOCX, Limits(max_uncompressed_bytes=100))
    assert raised.value.reason is Reason.DOCUMENT_UNSAFE and "expands to" in raised.value.message


def test_the_section_limit_cuts_one_section_and_says_so(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("word " * 5000, encoding="utf-8")
    document = engine.parse(path, DocumentKind.TEXT, Limits(max_section_chars=1000))
    first = document.sections[0]
    assert len(first.text) <= 1000 and first.error is not None
    assert first.error.reason is Reason.PROCESSING_LIMIT and first.error.metadata["limit_chars"] == "1000"


def test_the_document_limit_stops_reading_and_keeps_what_was_read(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("".join(f"line {n} of the harbour log\n" for n in range(100_000)), encoding="utf-8")
    document = engine.parse(path, DocumentKind.TEXT, Limits(max_document_chars=50_000))
    assert sum(len(s.text) for s in document.sections) <= 50_000
    assert "line 0 of the harbour log" in document.text
    (error,) = document.errors
    assert error.reason is Reason.PROCESSING_LIMIT and error.metadata["limit_chars"] == "50000"


def test_a_huge_sheet_is_cut_by_the_budget_while_it_is_read(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "1,2\n" * 200_000, encoding="utf-8")
    document = engine.parse(path, DocumentKind.CSV, Limits(max_document_chars=10_000))
    assert document.errors and sum(len(s.text) for s in document.sections) <= 10_000


def test_an_epub_chapter_with_entities_is_refused(generated, tmp_path):
    source = generated[0] / "report.epub"
    path = tmp_path / "laughs.epub"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            if info.filename.endswith(".xhtml") and b"barnacle" in data:
                data = docmaker.BILLION_LAUGHS
            copy.writestr(info, data)
    with pytest.raises(SensoriumError) as raised:
        engine.parse(path, DocumentKind.EPUB)
    assert raised.value.reason is Reason.DOCUMENT_UNSAFE


def test_xhtml_with_entities_is_refused(tmp_path):
    path = tmp_path / "laughs.xhtml"
    path.write_bytes(docmaker.BILLION_LAUGHS.replace(b"w:document", b"html"))
    with pytest.raises(SensoriumError) as raised:
        engine.parse(path, DocumentKind.HTML)
    assert raised.value.reason is Reason.DOCUMENT_UNSAFE


def test_deeply_nested_html_does_not_exhaust_the_stack(tmp_path):
    path = tmp_path / "deep.html"
    path.write_text(
        "<html><body>" + "<div>" * 100_000 + "deep harbour" + "</div>" * 100_000, encoding="utf-8"
    )
    assert "deep harbour" in engine.parse(path, DocumentKind.HTML).text


def test_damaged_inputs_are_unreadable_not_crashes(tmp_path):
    for name, kind in (
        ("x.docx", DocumentKind.DOCX),
        ("x.odt", DocumentKind.ODT),
        ("x.xlsx", DocumentKind.XLSX),
        ("x.epub", DocumentKind.EPUB),
    ):
        path = tmp_path / name
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
        with pytest.raises(SensoriumError) as raised:
            engine.parse(path, kind)
        assert raised.value.reason is Reason.DOCUMENT_UNREADABLE


def test_legacy_office_without_libreoffice_is_skipped_with_the_fix(generated, tmp_path, monkeypatch):
    limits = Limits(soffice=str(tmp_path / "no-soffice"))  # configured, and not there
    with pytest.raises(SensoriumError) as raised:
        engine.parse(generated[0] / "report.doc", DocumentKind.DOC, limits)
    assert raised.value.reason is Reason.UNSUPPORTED_TYPE
    assert "apt-get install libreoffice-writer-nogui" in raised.value.message
    assert raised.value.setting == "document.soffice" and "no-soffice" in raised.value.message
    monkeypatch.setenv("PATH", str(tmp_path))  # none on PATH either
    assert legacy.soffice() is None
    with pytest.raises(SensoriumError) as raised:
        engine.parse(generated[0] / "budget.xls", DocumentKind.XLS)
    assert "apt-get install libreoffice-calc-nogui" in raised.value.message
    assert "not installed here" in raised.value.message


def test_guards_scan_utf16_xml_for_entities():
    assert guards.has_entity_declaration("<!DOCTYPE x [<!ENTITY a 'b'>]>".encode("utf-16-le"))
    assert not guards.has_entity_declaration(b"<!DOCTYPE html><html></html>")


def test_entities_behind_a_long_prolog_are_still_found(tmp_path):
    path = tmp_path / "padded.docx"
    padded = docmaker.BILLION_LAUGHS.replace(b"<!DOCTYPE", b"<!--" + b" " * 100_000 + b"--><!DOCTYPE")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", docmaker._CONTENT_TYPES_DOCX)
        archive.writestr("word/document.xml", padded)
    with pytest.raises(SensoriumError) as raised:
        engine.parse(path, DocumentKind.DOCX)
    assert raised.value.reason is Reason.DOCUMENT_UNSAFE


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        (b'<?xml version="1.0"?><w:document xmlns:w="x"><w:t>&amp;</w:t>', False),
        (b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "x.dtd"><html>', False),
        (b"<!DOCTYPE x [<!ELEMENT x ANY>]><x/>", True),
        (b'<?xml version="1.0"?><!-- unfinished comment', None),
    ],
)
def test_the_prolog_decides_when_it_can(head, verdict):
    assert guards._prolog_verdict(head) is verdict
