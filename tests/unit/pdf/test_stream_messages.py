"""How the PDF servicer packs one worker task's pages and images into stream messages."""

from __future__ import annotations

from sensorium.errors import Reason, SensoriumError
from sensorium.pdf import servicer
from sensorium.pdf.api import ImageResult, PageResult, Totals


def page(number: int, text_bytes: int = 10) -> PageResult:
    return PageResult(page_number=number, text="x" * text_bytes, has_text_layer=text_bytes > 0)


def image(number: int, index: int = 0) -> ImageResult:
    return ImageResult(page_number=number, index=index, bbox=None, format="png", data=b"png",
                       width=1, height=1)


def kinds(messages: list) -> list[str]:
    return [m.WhichOneof("result") for m in messages]


def test_one_page_per_message_keeps_each_pages_images_after_it() -> None:
    items = [page(1), image(1), image(1, 1), page(2), page(3), image(3)]
    messages = servicer._stream_messages(items, 0, Totals())
    assert kinds(messages) == ["page", "image", "image", "page", "page", "image"]
    assert [m.page.page_number for m in messages if m.HasField("page")] == [1, 2, 3]


def test_batches_hold_up_to_the_asked_number_of_pages_then_their_images() -> None:
    items = [page(1), image(1), page(2), page(3), image(3), page(4), page(5)]
    messages = servicer._stream_messages(items, 2, Totals())
    assert kinds(messages) == ["pages", "image", "pages", "image", "pages"]
    assert [[p.page_number for p in m.pages.pages] for m in messages if m.HasField("pages")] == [
        [1, 2], [3, 4], [5],
    ]
    assert [m.image.page_number for m in messages if m.HasField("image")] == [1, 3]


def test_batches_stay_under_the_byte_cap_and_a_huge_page_goes_alone() -> None:
    third = servicer.BATCH_BYTES // 3
    items = [page(1, third), page(2, third), page(3, third), page(4, 2 * servicer.BATCH_BYTES), page(5)]
    messages = servicer._stream_messages(items, 32, Totals())
    batches = [[p.page_number for p in m.pages.pages] for m in messages]
    assert batches == [[1, 2], [3], [4], [5]]
    assert all(m.ByteSize() <= servicer.BATCH_BYTES for m in messages if len(m.pages.pages) > 1)


def test_totals_count_what_was_sent() -> None:
    failed = PageResult(page_number=2, text="", error=SensoriumError(Reason.PDF_PAGE_FAILED, "broken"))
    broken_image = ImageResult(page_number=1, index=1, bbox=None, format="", data=b"", width=9,
                               height=9, error=SensoriumError(Reason.IMAGE_TOO_LARGE, "big"))
    totals = Totals()
    servicer._stream_messages([page(1), image(1), broken_image, failed, page(3, 0)], 8, totals)
    summary = totals.summary()
    assert (summary.pages_extracted, summary.pages_failed, summary.pages_without_text) == (3, 1, 2)
    assert summary.images_extracted == 1
