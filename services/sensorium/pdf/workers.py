"""The PDF worker pool: extraction in killable, recycled, memory-capped processes.

A document is extracted by a sequence of tasks. The first task opens and authenticates the
document, reads its metadata and extracts its first pages (up to 4, and no more once 50 ms have
passed); the next tasks extract ranges of pages in chunks that grow (4, 8, 16, 32 pages), so the
first page reaches the caller at once while the per-task overhead stays small on long documents.
Results are yielded in page order. Each task names the document by path; a worker keeps the few
documents it works on open between their tasks, so chunks do not re-parse the file.

Each worker is a "lane": a `pebble.ProcessPool` of one process (one pool of N processes would
share one queue, and a document's chunks would land on every worker). A document stays on the
lane that opened it, up to two chunks in flight there (one running, one queued, so the worker
never waits for the caller), and spreads to other lanes only while they are idle: one document
alone uses every worker, while under load each document is opened, and its fonts and resources
loaded, once instead of once per worker (~6 ms a document, 5 % of its work, in
docs/benchmarks.md).

What the pool guarantees (docs/architecture.md):
- a document has one wall-clock budget (`timeout_seconds`) across its tasks, counted from when
  its first task starts running (time spent queued behind other documents is not the input's
  fault); a task past it is killed and the document fails with PROCESSING_LIMIT;
- a worker that crashes (segfault, abort) fails only the task it was running (PARSER_CRASH);
  pebble starts a replacement, and a pool broken beyond that is rebuilt;
- workers exit after `recycle_after_documents` tasks, returning memory MuPDF leaked or
  fragmented; a task is a whole document of up to 4 pages, or a chunk of a longer one, so long
  documents recycle workers sooner;
- each worker's address space is capped at `worker_memory_mb` (RLIMIT_AS);
- at most `max_pending_documents` documents are admitted at once; more get OVERLOADED with a
  retry delay.

The lanes, limits, crash handling and admission are `sensorium.workers.WorkerPool`'s, shared
with the document engine's pool; this module adds the PDF's chunked tasks and lane choice.
Workers start through a "forkserver" that has already imported PyMuPDF.

Tests inject faults from outside the shipped code: the pool takes a `page_extractor` (default
`extractor.extract_page`) that its workers call for every page, so a test can hand it a function
of its own (tests/support) that crashes, hangs or reports its process id for a kill from outside.
"""

from __future__ import annotations

import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pebble
import pymupdf

from sensorium import workers
from sensorium.errors import Reason, SensoriumError
from sensorium.pdf import extractor
from sensorium.pdf.api import DocumentInfo, ExtractOptions, ImageResult, PageResult
from sensorium.pdf.extractor import Limits
from sensorium.workers import Lane, PoolLimits, Wording, WorkerPool

if TYPE_CHECKING:
    from sensorium.settings import PdfSettings

PageExtractor = Callable[
    [pymupdf.Document, int, ExtractOptions, Limits], tuple[PageResult, list[ImageResult]]
]
"""`extractor.extract_page`'s signature: what a worker calls for each page."""

_Lane = Lane  # the name the PDF pool's tests know

FIRST_CHUNK_PAGES = 4
FIRST_TASK_SECONDS = 0.05
MAX_CHUNK_PAGES = 32
_OPEN_DOCUMENTS = 4
WORDING = Wording(
    service="PDF", settings="pdf", verb="extracting",
    crash_advice="repair it (e.g. `qpdf in.pdf out.pdf`) and send it again",
    timeout_advice="extract fewer pages at a time (a page range) or send a smaller document",
)


# ---------------------------------------------------------------------------------------------
# Worker side: these run in the worker processes.


@dataclass
class _WorkerState:
    extract_page: PageExtractor = extractor.extract_page
    # Open documents by (path, inode, size, mtime, password), least recently used first.
    documents: OrderedDict[tuple[Any, ...], pymupdf.Document] = field(default_factory=OrderedDict)


_worker = _WorkerState()


@dataclass(frozen=True)
class _TaskResult:
    items: list[PageResult | ImageResult]
    info: DocumentInfo | None  # first task only
    next_index: int  # first page index (0-based) not yet extracted
    stop_index: int  # end of the requested range (0-based, exclusive)
    started_at: float  # time.monotonic() when the task started; one clock for all processes
    worker_tasks: int  # tasks this worker has run, this one included


def _setup_worker(page_extractor: PageExtractor) -> None:
    """`workers.init_worker`'s PDF part; it must never raise."""
    _worker.extract_page = page_extractor
    # MuPDF prints every recoverable problem to stderr; the results report what matters.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)


def _run_task(
    path: str, options: ExtractOptions, limits: Limits, start: int | None, stop: int, end: int
) -> _TaskResult:
    """Extract pages [start, stop) of the document, whose requested range ends at `end`.

    `start=None` makes the first task: it also checks the document, reads its metadata and
    resolves the requested range, then extracts at most `stop` pages of it and stops early,
    after at least one page, once FIRST_TASK_SECONDS have passed, so the first page is not
    held back by slow pages after it.
    """
    started_at = time.monotonic()
    workers.state.tasks += 1
    workers.arm_cpu_limit()
    _drop_deleted()
    key: tuple[Any, ...] | None = None
    try:
        first_task = start is None
        try:
            doc, key = _open(path, options.password, limits if first_task else None)
        except OSError as exc:  # gone or unreadable: a file the caller named, not an upload
            raise SensoriumError(
                Reason.PDF_UNREADABLE, f"the file cannot be read ({exc.strerror or type(exc).__name__})"
            ) from None
        info: DocumentInfo | None = None
        if first_task:
            info = extractor.read_info(doc)
            indices = extractor.resolve_range(info.page_count, options.first_page, options.last_page)
            start, end = indices.start, indices.stop
            stop = min(end, start + stop)
        assert start is not None
        items: list[PageResult | ImageResult] = []
        index = start
        while index < stop:
            if first_task and index > start and time.monotonic() - started_at > FIRST_TASK_SECONDS:
                break
            page, images = _worker.extract_page(doc, index, options, limits)
            items.append(page)
            items.extend(images)
            index += 1
        if index >= end:
            _close_cached(key)  # the last chunk: release the file now
    except MemoryError:
        _close_cached()  # every cached document, to give the memory back
        raise SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"extracting the document needs more memory than the limit of "
            f"{workers.state.memory_mb} MiB per worker; send a smaller or simpler document",
            {"limit_mb": str(workers.state.memory_mb)}, setting="pdf.worker_memory_mb",
        ) from None
    except BaseException:
        if key is not None:
            _close_cached(key)
        raise
    return _TaskResult(items, info, index, end, started_at, workers.state.tasks)


def _open(path: str, password: str, limits: Limits | None) -> tuple[pymupdf.Document, tuple[Any, ...]]:
    """The document at `path` and its cache key.

    A worker keeps the documents it is working on open between their tasks: re-opening costs
    a few milliseconds per task (~8 ms for a 1,000-page page tree), a fifth of the work on a
    long document. Several stay open because under load tasks of different documents
    interleave on one worker. The key includes the file's identity: temporary names recur.
    """
    stat = os.stat(path)
    key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns, password)
    cached = _worker.documents.get(key)
    # The first task of a document always opens it afresh, with the limits checked.
    if cached is not None and limits is None:
        _worker.documents.move_to_end(key)
        return cached, key
    _close_cached(key)
    doc = extractor.open_document(
        path,
        password,
        max_pages=limits.max_pages if limits else None,
        max_bytes=limits.max_document_bytes if limits else None,
    )
    _worker.documents[key] = doc
    while len(_worker.documents) > _OPEN_DOCUMENTS:
        _close_cached(next(iter(_worker.documents)))
    return doc, key


def _drop_deleted() -> None:
    """Close cached documents whose file is gone: the server deletes a spooled upload after
    its call, and an open file would keep its disk space in use."""
    for key in list(_worker.documents):
        path, inode = key[0], key[1]
        try:
            gone = os.stat(path).st_ino != inode
        except OSError:
            gone = True
        if gone:
            _close_cached(key)


def _close_cached(key: tuple[Any, ...] | None = None) -> None:
    """Close the document of `key`, or every cached document."""
    keys = [key] if key is not None else list(_worker.documents)
    for each in keys:
        doc = _worker.documents.pop(each, None)
        if doc is not None:
            doc.close()


# ---------------------------------------------------------------------------------------------
# Server side.


class PdfWorkerPool(WorkerPool):
    """Extracts documents in worker processes; consumed by the asyncio servicer.

    `on_worker_restart(reason)` is called whenever a worker is replaced: "crash", "timeout",
    "cancelled" (its document's caller went away) or "recycled"; the servicer turns it into a
    metric. This module imports nothing of gRPC or Prometheus.
    """

    def __init__(
        self,
        settings: PdfSettings,
        *,
        limits: Limits | None = None,
        workers: int,
        on_worker_restart: Callable[[str], None] | None = None,
        page_extractor: PageExtractor = extractor.extract_page,
        log_config: tuple[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._limits = limits or Limits.from_settings(settings)  # the text limits come from the caller
        pool = PoolLimits(
            timeout_seconds=settings.timeout_seconds, memory_mb=settings.worker_memory_mb,
            recycle_after=settings.recycle_after_documents, max_pending=settings.max_pending_documents,
        )
        super().__init__(
            pool, WORDING, workers=workers, preload=[__name__], setup=_setup_worker,
            setup_args=(page_extractor,), on_worker_restart=on_worker_restart, log_config=log_config,
        )

    async def extract(
        self, path: str | os.PathLike[str], options: ExtractOptions
    ) -> AsyncGenerator[DocumentInfo | list[PageResult | ImageResult], None]:
        """Extract the document at `path`: its `DocumentInfo`, then the requested pages in
        order, each followed by its images (when asked for), in lists of the items extracted
        together (one worker task's; a caller can send them on as one message).

        Raises `SensoriumError` for a document that fails as a whole — before the first item,
        or after some pages for PROCESSING_LIMIT and PARSER_CRASH. Consume it with
        `contextlib.aclosing` so a caller that stops early frees its workers at once.
        """
        self._admit()
        begun = time.monotonic()
        path = os.fspath(path)
        window: deque[tuple[pebble.ProcessFuture[Any], _Lane]] = deque()
        mine: Counter[_Lane] = Counter()  # this document's tasks in flight, per lane
        try:
            lane = min(self._lanes, key=_Lane.load)
            first = self._schedule(
                lane, _run_task, (path, options, self._limits, None, FIRST_CHUNK_PAGES, 0),
                self._settings.timeout_seconds,
            )
            window.append((first, lane))
            result = await self._result(first, lane)
            window.popleft()
            assert result.info is not None
            deadline = result.started_at + self._settings.timeout_seconds
            yield result.info
            if result.items:
                yield result.items
            home = [lane]  # the lanes that have this document open
            end = result.stop_index
            start, size = result.next_index, FIRST_CHUNK_PAGES
            while True:
                while start < end and (target := self._next_lane(home, mine)) is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._timed_out()
                    if target not in home:
                        home.append(target)
                    pages = _chunk(start, end, size, spread=len(home) > 1)
                    args = (path, options, self._limits, pages.start, pages.stop, end)
                    window.append((self._schedule(target, _run_task, args, remaining), target))
                    mine[target] += 1
                    start, size = pages.stop, min(size * 2, MAX_CHUNK_PAGES)
                if not window:
                    break
                future, lane = window.popleft()
                mine[lane] -= 1
                result = await self._result(future, lane)
                if result.items:
                    yield result.items
            elapsed = time.monotonic() - begun
            self._seconds_per_task += 0.1 * (elapsed - self._seconds_per_task)
        finally:
            for future, _lane in window:
                if future.running():
                    self._on_worker_restart("cancelled")
                future.cancel()
            self._pending -= 1

    def _next_lane(self, home: list[_Lane], mine: Counter[_Lane]) -> _Lane | None:
        """Where a document's next chunk goes: an idle lane (one that has the document open
        first), else one of its own lanes with fewer than two of its chunks; None to wait."""
        idle = [lane for lane in self._lanes if lane.load() == 0]
        if idle:
            return next((lane for lane in idle if lane in home), idle[0])
        own = [lane for lane in home if mine[lane] < 2]
        return min(own, key=_Lane.load) if own else None


def _chunk(start: int, stop: int, size: int, *, spread: bool) -> range:
    """The next page range of a document: `size` pages from `start` (sizes double up to
    MAX_CHUNK_PAGES). While the document is spread over several workers, at most half of what
    is left: its last results then come in small pieces from every worker, instead of one
    worker finishing a big chunk alone. On one worker, every chunk costs a round trip (~0.3 ms
    of the server's CPU) and small ones buy nothing."""
    if spread:
        size = min(size, max(FIRST_CHUNK_PAGES, (stop - start) // 2))
    return range(start, min(stop, start + size))
