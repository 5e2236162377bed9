"""A unary response is refused as soon as it passes what gRPC clients accept, and the work behind
it stops there: a small file that expands to millions of characters costs a few MiB of work, not
all of it."""

from __future__ import annotations

import pytest

from sensorium.errors import Reason, SensoriumError
from sensorium.pdf import servicer
from sensorium.pdf.api import DocumentInfo, ExtractOptions, PageResult


class EndlessPdf:
    """A runtime whose document never ends: each page holds 300,000 characters."""

    def __init__(self) -> None:
        self.pages = 0
        self.closed = False

    async def extract(self, path, options):
        try:
            yield DocumentInfo("", "", "", "", "", "", None, None, 10_000, "1.7", False, False)
            while True:
                self.pages += 1
                yield [PageResult(self.pages, "x" * 300_000)]
        finally:
            self.closed = True


async def test_a_unary_extraction_stops_at_the_response_limit() -> None:
    runtime = EndlessPdf()
    with pytest.raises(SensoriumError) as error:
        await servicer.extract_document(runtime, "endless.pdf", ExtractOptions())  # type: ignore[arg-type]
    assert error.value.reason is Reason.INPUT_TOO_LARGE and "StreamExtractDocument" in error.value.message
    assert runtime.closed and runtime.pages == 14  # 4 MiB / 300,000 characters: stopped at once
