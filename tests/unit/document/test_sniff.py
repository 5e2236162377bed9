"""Sniffing by content: zip contents, OLE2 streams, text by decoding; names only among text."""

from __future__ import annotations

import shutil
import zipfile

import pytest

import docmaker
from sensorium.document import sniff as document_sniff
from sensorium.document.api import DocumentKind
from sensorium.errors import Reason


def sniff(path):
    return document_sniff.sniff(path.read_bytes()[: document_sniff.HEAD_BYTES], path)


@pytest.mark.parametrize(
    ("source", "renamed", "kind"),
    [
        ("report.docx", "looks-like.xlsx", DocumentKind.DOCX),
        ("budget.xlsx", "table.docx", DocumentKind.XLSX),
        ("slides.pptx", "deck.zip", DocumentKind.PPTX),
        ("report.odt", "text.ods", DocumentKind.ODT),
        ("report.epub", "book.zip", DocumentKind.EPUB),
        ("report.doc", "word.xls", DocumentKind.DOC),
        ("budget.xls", "sheet.bin", DocumentKind.XLS),
        ("slides.ppt", "slides.doc", DocumentKind.PPT),
        ("roster.msg", "mail.dat", DocumentKind.MSG),
        ("report.html", "page.txt", DocumentKind.HTML),
        ("dues.eml", "message.txt", DocumentKind.EML),
        ("talk.vtt", "subs.txt", DocumentKind.VTT),
        ("talk.srt", "subs.txt", DocumentKind.SRT),
        ("report.rtf", "letter.txt", DocumentKind.RTF),
    ],
)
def test_kinds_come_from_content_not_names(generated, tmp_path, source, renamed, kind):
    path = tmp_path / renamed
    shutil.copy(generated[0] / source, path)
    assert sniff(path).kind is kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("notes.md", DocumentKind.MARKDOWN),
        ("notes.adoc", DocumentKind.ASCIIDOC),
        ("notes.rst", DocumentKind.RST),
        ("rows.csv", DocumentKind.CSV),
        ("rows.tsv", DocumentKind.TSV),
        ("notes.txt", DocumentKind.TEXT),
        ("script.py", DocumentKind.TEXT),
        ("fake.srt", DocumentKind.TEXT),
        ("fake.eml", DocumentKind.TEXT),
    ],
)
def test_extensions_choose_only_among_text(tmp_path, name, kind):
    path = tmp_path / name
    path.write_text("Plain words, a comma, and more words.\n", encoding="utf-8")
    assert sniff(path).kind is kind


def test_a_binary_file_named_txt_is_not_text(tmp_path):
    path = tmp_path / "binary.txt"
    docmaker.binary_txt(path)
    verdict = sniff(path)
    assert verdict.kind is None and verdict.reason is Reason.UNSUPPORTED_TYPE
    assert "binary" in verdict.message and ".txt" in verdict.message


def test_a_plain_zip_is_no_document(tmp_path):
    path = tmp_path / "photos.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "x")
    verdict = sniff(path)
    assert verdict.kind is None and verdict.reason is Reason.UNSUPPORTED_TYPE


@pytest.mark.parametrize(
    ("text", "encoding", "found"),
    [
        ("Le café sur la façade était fermé à Noël.\n" * 3, "cp1252", "cp1252"),
        ("Привет, как дела? Это тест кодировки.\n" * 3, "cp1251", "cp1251"),
        ("Harbour ledger, UTF-16 without a byte-order mark.\n", "utf-16-le", "utf-16-le"),
        ("Ωmega ✓ plain UTF-8.\n", "utf-8", "utf-8"),
    ],
)
def test_text_encodings_are_detected(text, encoding, found):
    assert document_sniff.detect_encoding(text.encode(encoding)) == found


def test_utf8_cut_inside_a_character_is_still_utf8():
    data = ("é" * 5000).encode("utf-8")[:8191]
    assert document_sniff.detect_encoding(data) == "utf-8"


def test_an_empty_file_says_so():
    assert document_sniff.sniff(b"", "x.txt").reason is Reason.INPUT_EMPTY


def test_the_index_takes_every_document_for_a_document(generated):
    """The index sniffs PDF and media first and documents after: no document may be taken for
    an image or a recording on the way, and each is the kind the document sniff says."""
    from sensorium.index import sniff as index_sniff

    for path in generated[0].iterdir():
        verdict = index_sniff.sniff_file(path)
        assert verdict.kind == "document", path.name
        assert verdict.mime == document_sniff.MIME_TYPES[sniff(path).kind], path.name
