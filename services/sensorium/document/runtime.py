"""The document runtime: the worker pool every front end parses documents through, its limits
from the settings, and its metrics.

`parse(path, options)` sniffs and parses the file in a worker process (`document/pool.py`: a
time limit per document, a memory cap, crash isolation, recycling) and returns the `Document`.
It is the in-process `DocumentEngine` of the one seam (`sensorium.engines`); front ends turn
its result into their own shapes: stream messages in the gRPC servicer, rows in the index job,
text in the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from sensorium import metrics
from sensorium.contract import RuntimeContext
from sensorium.document import engine, legacy
from sensorium.document.api import Document, DocumentEngine, ParseOptions
from sensorium.document.guards import Limits
from sensorium.document.pool import document_pool
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.settings import Settings
from sensorium.workers import PoolLimits, WorkerPool

log = logging.getLogger("sensorium.document")

SIZE_SETTING = "document.max_document_bytes"


def limits_of(settings: Settings) -> Limits:
    """The engine's limits from the settings: the document group's, and the text group's
    character limits shared with the other text services."""
    document, text = settings.document, settings.text
    return Limits(
        max_section_chars=text.max_chars_per_page,
        max_document_chars=text.max_chars_per_document,
        max_pixels=document.max_pixels,
        max_pictures=document.max_pictures,
        max_attachment_bytes=document.max_attachment_bytes,
        convert_timeout_seconds=document.soffice_timeout_seconds,
        soffice=str(document.soffice) if document.soffice is not None else "",
    )


class DocumentRuntime:
    """Document parsing in worker processes; `start()` before use, `close()` after."""

    def __init__(self, context: RuntimeContext) -> None:
        self.settings = context.settings.document
        self.limits = limits_of(context.settings)
        self.workers = self.settings.workers or context.cpus
        self.budget = context.budget
        self._log_config = (context.settings.log_level, context.settings.log_format)
        self._pool: WorkerPool | None = None

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise SensoriumError(Reason.NOT_READY, "the document service is starting; retry shortly",
                                 retry_after_seconds=1.0)
        return self._pool

    async def start(self) -> None:
        if legacy.soffice(self.limits.soffice) is None:
            log.warning("legacy Office files (.doc, .xls, .ppt) will be skipped: LibreOffice's soffice "
                        "is %s; install LibreOffice or set SENSORIUM_DOCUMENT__SOFFICE",
                        f"not at {self.limits.soffice}" if self.limits.soffice else "not on PATH")
        settings = self.settings
        limits = PoolLimits(timeout_seconds=settings.timeout_seconds, memory_mb=settings.worker_memory_mb,
                            recycle_after=settings.recycle_after_documents,
                            max_pending=settings.max_pending_documents)
        pool = document_pool(limits, workers=self.workers, on_worker_restart=_count_restart,
                             log_config=self._log_config)
        try:
            await pool.warm_up()
        except Exception as exc:
            await pool.close()
            raise ServiceStartError(f"the document worker processes did not start: {exc}") from exc
        self._pool = pool

    async def close(self, grace: float | None = None) -> None:
        # In-flight documents have had the server's grace period already; workers stop now.
        if self._pool is not None:
            await self._pool.close()

    async def parse(self, path: str | os.PathLike[str], options: ParseOptions) -> Document:
        """The document at `path`, parsed in a worker. Raises `SensoriumError` for a file that
        yields nothing (see `DocumentEngine.parse`). Records the metrics whatever the outcome."""
        pool = self.pool
        started, outcome = time.perf_counter(), "ok"
        fmt = options.kind.value if options.kind is not None else "unknown"
        try:
            size = await asyncio.to_thread(os.path.getsize, path)
            if size > self.settings.max_document_bytes:
                limit = self.settings.max_document_bytes
                raise SensoriumError(
                    Reason.INPUT_TOO_LARGE,
                    f"the document has {size:,} bytes, more than the limit of {limit:,}",
                    {"size_bytes": str(size), "limit_bytes": str(limit)}, setting=SIZE_SETTING,
                )
            document: Document = await pool.run(engine.read, os.fspath(path), options, self.limits)
            fmt = document.kind.value
            return document
        except SensoriumError as error:
            outcome = error.reason.name
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except BaseException:
            outcome = Reason.INTERNAL_ERROR.name
            raise
        finally:
            metrics.DOCUMENT_DOCUMENTS.labels(fmt, outcome).inc()
            metrics.DOCUMENT_SECONDS.observe(time.perf_counter() - started)


def _count_restart(reason: str) -> None:
    metrics.WORKER_RESTARTS.labels("document", reason).inc()


if TYPE_CHECKING:
    _ENGINE: type[DocumentEngine] = DocumentRuntime  # mypy: the runtime is the in-process DocumentEngine
