"""The PDF runtime: the worker pool every front end extracts through, with its metrics.

`extract(path, options)` opens the document in a worker process (crash isolation, per-document
time limit, memory cap: `sensorium.pdf.workers`) and yields its `DocumentInfo`, then lists of
the pages (each followed by its images) extracted together. It is the in-process `PdfEngine` of
the one seam (`sensorium.engines`); front ends convert its results to their own shapes: stream
messages in the gRPC servicer, rows in the index job, text in the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from sensorium import metrics
from sensorium.contract import RuntimeContext
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.pdf import extractor
from sensorium.pdf.api import ExtractOptions, ImageResult, PageResult, PdfEngine, Results
from sensorium.pdf.extractor import Limits
from sensorium.pdf.workers import PageExtractor, PdfWorkerPool

log = logging.getLogger("sensorium.pdf")

_PAGES_OK = metrics.PDF_PAGES.labels("ok")
_PAGES_FAILED = metrics.PDF_PAGES.labels("failed")


class PdfRuntime:
    """PDF extraction in worker processes; `start()` before use, `close()` after."""

    def __init__(
        self, context: RuntimeContext, *, page_extractor: PageExtractor = extractor.extract_page
    ) -> None:
        self.settings = context.settings.pdf
        self.limits = Limits.from_settings(self.settings, context.settings.text)
        self.workers = self.settings.workers or context.cpus
        self.budget = context.budget
        self._log_config = (context.settings.log_level, context.settings.log_format)
        self._page_extractor = page_extractor
        self._pool: PdfWorkerPool | None = None
        self.quarantine = Quarantine(self.settings.crash_quarantine_seconds)

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
        pool = PdfWorkerPool(self.settings, limits=self.limits, workers=self.workers,
                             on_worker_restart=_count_restart,
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
            await self._check_quarantine(path)
            budget = extractor.DocumentTextBudget(self.limits.max_chars_per_document)
            async with contextlib.aclosing(pool.extract(path, options)) as results:
                async for result in results:
                    if isinstance(result, list):
                        kept, spent = _within(result, budget)
                        _count_pages(kept)
                        yield kept
                        if spent:
                            return  # leaving the loop closes the extraction: its workers stop
                        continue
                    yield result
        except SensoriumError as error:
            outcome = error.reason.name
            if _killed_a_worker(error):
                await self._strike(path)
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


    async def _check_quarantine(self, path: str | os.PathLike[str]) -> None:
        if not self.quarantine.active:
            return  # the usual case: nothing to look up, not even a stat
        try:
            size = await asyncio.to_thread(os.path.getsize, path)
        except OSError:
            return  # the worker reports a file it cannot read
        if not self.quarantine.may_hold(size):
            return  # nothing of this size crashed a worker: no need to hash it
        key = (size, await asyncio.to_thread(sha256_file, path))
        until = self.quarantine.refused_until(key)
        if until is not None:
            left = until - time.monotonic()
            raise SensoriumError(
                Reason.PARSER_CRASH,
                f"this document crashed or hung the PDF parser {self.quarantine.strikes} times in "
                f"the last {self.quarantine.seconds:g} s and is refused for {left:.0f} s more; "
                "repair it (e.g. `qpdf in.pdf out.pdf`) rather than retrying it",
                {"quarantined_seconds": f"{left:.0f}"}, setting="pdf.crash_quarantine_seconds",
            )

    async def _strike(self, path: str | os.PathLike[str]) -> None:
        if not self.quarantine.seconds:
            return
        with contextlib.suppress(OSError):  # the upload may be gone already
            size = await asyncio.to_thread(os.path.getsize, path)
            self.quarantine.strike((size, await asyncio.to_thread(sha256_file, path)))


def _within(
    items: list[PageResult | ImageResult], budget: extractor.DocumentTextBudget
) -> tuple[list[PageResult | ImageResult], bool]:
    """`items` as far as the document's text budget allows (the page that spends it is cut,
    its images kept, later items dropped), and whether it is spent."""
    kept: list[PageResult | ImageResult] = []
    for position, item in enumerate(items):
        if isinstance(item, PageResult):
            item, spent = budget.take(item)
            if spent:
                kept.append(item)
                for rest in items[position + 1:]:
                    if not isinstance(rest, ImageResult) or rest.page_number != item.page_number:
                        break
                    kept.append(rest)
                return kept, True
        kept.append(item)
    return kept, False


class Quarantine:
    """Documents, by (size, sha256), that crashed or hung workers recently.

    `strikes` kills within `seconds` refuse a document for `seconds` after the last one. Sizes
    are kept apart so that, while nothing is quarantined, no document is ever hashed; at most
    `capacity` documents are remembered (the oldest are forgotten first).
    """

    def __init__(self, seconds: float, strikes: int = 2, capacity: int = 4096) -> None:
        self.seconds, self.strikes, self.capacity = seconds, strikes, capacity
        self._kills: OrderedDict[tuple[int, str], list[float]] = OrderedDict()
        self._sizes: Counter[int] = Counter()

    @property
    def active(self) -> bool:
        return bool(self._kills)

    def may_hold(self, size: int) -> bool:
        return self._sizes[size] > 0

    def strike(self, key: tuple[int, str]) -> None:
        now = time.monotonic()
        if key not in self._kills:
            self._kills[key] = []
            self._sizes[key[0]] += 1
        self._kills.move_to_end(key)
        self._kills[key] = [t for t in self._kills[key] if now - t < self.seconds] + [now]
        while len(self._kills) > self.capacity:
            self._forget(next(iter(self._kills)))

    def refused_until(self, key: tuple[int, str]) -> float | None:
        kills = [t for t in self._kills.get(key, []) if time.monotonic() - t < self.seconds]
        if not kills:
            if key in self._kills:
                self._forget(key)
            return None
        self._kills[key] = kills
        return kills[-1] + self.seconds if len(kills) >= self.strikes else None

    def _forget(self, key: tuple[int, str]) -> None:
        del self._kills[key]
        self._sizes[key[0]] -= 1
        if not self._sizes[key[0]]:
            del self._sizes[key[0]]


def _killed_a_worker(error: SensoriumError) -> bool:
    """A crash, or a hang the pool killed; not a refusal by the quarantine itself."""
    if "quarantined_seconds" in error.metadata:
        return False
    return error.reason is Reason.PARSER_CRASH or error.setting == "pdf.timeout_seconds"


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _count_pages(items: list[PageResult | ImageResult]) -> None:
    pages = [item for item in items if isinstance(item, PageResult)]
    failed = sum(1 for page in pages if page.error)
    _PAGES_OK.inc(len(pages) - failed)
    if failed:
        _PAGES_FAILED.inc(failed)


def _count_restart(reason: str) -> None:
    metrics.WORKER_RESTARTS.labels("pdf", reason).inc()


if TYPE_CHECKING:
    _ENGINE: type[PdfEngine] = PdfRuntime  # mypy: the runtime is the in-process PdfEngine
