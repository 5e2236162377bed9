"""The document engine's worker processes: `sensorium.workers.WorkerPool` with the document
wording and the parsers preloaded in the forkserver.

`await pool.run(engine.parse, path, kind, limits, name=...)` parses one file in a worker:
time limit, memory cap and crash isolation as for PDFs. (The runtime that owns the pool, its
settings and metrics comes with the document service.)
"""

from __future__ import annotations

from collections.abc import Callable

from sensorium.workers import PoolLimits, Wording, WorkerPool

WORDING = Wording(
    service="document", settings="document",
    crash_advice="open it in its application and save a copy, then send that",
    timeout_advice="send a smaller document, or save it in a simpler format",
)
PRELOAD = ["sensorium.document.engine"]
"""Imported once in the forkserver, so a restarted worker does not import the parsers again
(python-docx, python-pptx, openpyxl, lxml, selectolax: ~0.3 s)."""


def document_pool(
    limits: PoolLimits, *, workers: int, on_worker_restart: Callable[[str], None] | None = None,
    log_config: tuple[str, str] | None = None,
) -> WorkerPool:
    return WorkerPool(limits, WORDING, workers=workers, preload=PRELOAD,
                      on_worker_restart=on_worker_restart, log_config=log_config)
