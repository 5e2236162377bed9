"""The PDF runtime: the worker pool every front end extracts through, with its metrics.

`extract(path, options)` opens the document in a worker process (crash isolation, per-document
time limit, memory cap: `sensorium.pdf.workers`) and yields its `DocumentInfo`, then lists of
the pages (each followed by its images) extracted together. Front ends convert those to their
own shapes: stream messages in the gRPC servicer, rows in the index job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator

from sensorium import metrics
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.pdf import extractor
from sensorium.pdf.extractor import DocumentInfo, ExtractOptions, ImageResult, Limits, PageResult
from sensorium.pdf.workers import PageExtractor, PdfWorkerPool
from sensorium.registry import RuntimeContext

log = logging.getLogger("sensorium.pdf")

Results = DocumentInfo | list[PageResult | ImageResult]

_PAGES_OK = metrics.PDF_PAGES.labels("ok")
_PAGES_FAILED = metrics.PDF_PAGES.labels("failed")


class PdfRuntime:
    """PDF extraction in worker processes; `start()` before use, `close()` after."""

    def __init__(
        self, context: RuntimeContext, *, page_extractor: PageExtractor = extractor.extract_page
    ) -> None:
        self.settings = context.settings.pdf
        self.limits = Limits.from_settings(self.settings)
        self.workers = self.settings.workers or context.cpus
        self.budget = context.budget
        self._log_config = (context.settings.log_level, context.settings.log_format)
        self._page_extractor = page_extractor
        self._pool: PdfWorkerPool | None = None

    @property
    def pool(self) -> PdfWorkerPool:
        if self._pool is None:
            raise SensoriumError(Reason.NOT_READY, "the PDF service is starting; retry shortly",
                                 retry_after_seconds=1.0)
        return self._pool

    async def start(self) -> None:
        if self.limits.ocr_enabled:
            tessdata, problem = extractor.find_tessdata(self.limits.tessdata_dir, self.limits.ocr_language)
            if tessdata is None:
                log.warning("pages without a text layer will not be OCR'd: %s", problem)
        pool = PdfWorkerPool(self.settings, workers=self.workers, on_worker_restart=_count_restart,
                             page_extractor=self._page_extractor, log_config=self._log_config)
        try:
            await pool.warm_up()
        except Exception as exc:
            await pool.close()
            raise ServiceStartError(f"the PDF worker processes did not start: {exc}") from exc
        self._pool = pool

    async def close(self, grace: float | None = None) -> None:
        # In-flight documents have had the server's grace period already; workers stop now.
        if self._pool is not None:
            await self._pool.close()

    async def extract(
        self, path: str | os.PathLike[str], options: ExtractOptions
    ) -> AsyncGenerator[Results, None]:
        """The document's info, then lists of the items each worker task extracted (pages in
        order, each followed by its images). Raises `SensoriumError` for a document that fails
        as a whole. Records the document's metrics whatever the outcome."""
        pool = self.pool
        started, outcome = time.perf_counter(), "ok"
        try:
            async with contextlib.aclosing(pool.extract(path, options)) as results:
                async for result in results:
                    if isinstance(result, list):
                        _count_pages(result)
                    yield result
        except SensoriumError as error:
            outcome = error.reason.name
            raise
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"  # the caller went away or stopped reading
            raise
        except BaseException:
            outcome = Reason.INTERNAL_ERROR.name
            raise
        finally:
            metrics.PDF_DOCUMENTS.labels(outcome).inc()
            metrics.PDF_SECONDS.observe(time.perf_counter() - started)


def _count_pages(items: list[PageResult | ImageResult]) -> None:
    pages = [item for item in items if isinstance(item, PageResult)]
    failed = sum(1 for page in pages if page.error)
    _PAGES_OK.inc(len(pages) - failed)
    if failed:
        _PAGES_FAILED.inc(failed)


def _count_restart(reason: str) -> None:
    metrics.WORKER_RESTARTS.labels("pdf", reason).inc()
