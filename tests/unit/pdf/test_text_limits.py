"""Character limits on a PDF's text (issue 22: a small file can produce unbounded text)."""

from __future__ import annotations

from pathlib import Path

import pymupdf

import testkit
from sensorium.errors import Reason
from sensorium.pdf.api import BBox, Block, ExtractOptions, PageResult
from sensorium.pdf.extractor import DocumentTextBudget, Limits, extract_page, open_document

BOX = BBox(0, 0, 1, 1)


def _first_page(path: Path, limits: Limits) -> PageResult:
    with open_document(path) as document:
        return extract_page(document, 0, ExtractOptions(include_blocks=True), limits)[0]


def test_a_small_file_that_draws_its_text_again_and_again_is_cut_at_the_page_limit(tmp_path: Path) -> None:
    hostile = tmp_path / "repeats.pdf"
    hostile.write_bytes(testkit.repeated_form_pdf(2_000))  # under 1 KB, over 200,000 characters
    assert hostile.stat().st_size < 2_000
    page = _first_page(hostile, Limits(ocr_enabled=False))  # the documented default: 100,000
    assert len(page.text) == 100_000 and page.text.startswith("the same words")
    assert len("\n".join(block.text for block in page.blocks)) == 100_000  # blocks agree with text
    assert page.error is None and page.limit is not None
    assert page.limit.reason is Reason.PROCESSING_LIMIT and page.limit.setting == "text.max_chars_per_page"
    assert int(page.limit.metadata["chars"]) > 200_000 and page.limit.metadata["limit_chars"] == "100000"
    assert "page 1 has" in page.limit.message


def test_an_ordinary_page_is_not_cut(tmp_path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((50, 60), "A page of ordinary length.")
    doc.save(tmp_path / "plain.pdf")
    page = _first_page(tmp_path / "plain.pdf", Limits(ocr_enabled=False, max_chars_per_page=26))
    assert page.text == "A page of ordinary length." and page.limit is None


def test_the_document_budget_cuts_the_page_that_spends_it_and_says_to_stop() -> None:
    budget = DocumentTextBudget(25)
    first, spent = budget.take(PageResult(1, "0123456789", [Block(BOX, "0123456789")]))
    assert (first.text, first.limit, spent) == ("0123456789", None, False)
    second, spent = budget.take(PageResult(2, "abcdefghij\nklmnopqrst", [Block(BOX, "abcdefghij"),
                                                                        Block(BOX, "klmnopqrst")]))
    assert spent and second.text == "abcdefghij\nklmn" and len(second.text) == 15
    assert [block.text for block in second.blocks] == ["abcdefghij", "klmn"]
    assert second.limit is not None and second.limit.reason is Reason.PROCESSING_LIMIT
    assert second.limit.setting == "text.max_chars_per_document" and second.limit.metadata["page"] == "2"
