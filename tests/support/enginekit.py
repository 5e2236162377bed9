"""Engines driven directly, in the test's own process, without their runtimes: a whole PDF at
once, a whole transcript at once, the PDF pool's live worker processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from sensorium.pdf.api import ExtractOptions, Item
from sensorium.pdf.extractor import Limits, extract_page, open_document, read_info, resolve_range
from sensorium.transcription.api import Info, Piece, Segment


def extract_document(path: str | os.PathLike[str], options: ExtractOptions, limits: Limits) -> Iterator[Item]:
    """A whole document in this process: the `DocumentInfo` first, then each page of the
    requested range, each followed by its images. Raises `SensoriumError` for a document that
    cannot be extracted at all (unreadable, encrypted, no pages, too many, bad range)."""
    doc = open_document(path, options.password, max_pages=limits.max_pages,
                        max_bytes=limits.max_document_bytes)
    try:
        info = read_info(doc)
        indices = resolve_range(info.page_count, options.first_page, options.last_page)
        yield info
        for index in indices:
            page, images = extract_page(doc, index, options, limits)
            yield page
            yield from images
    finally:
        doc.close()


def transcribe_all(transcriber: Any, request: Any) -> tuple[Info, list[Segment]]:
    """The whole result of `Transcriber.run` at once, in the calling thread."""
    pieces: list[Piece] = []
    transcriber.run(request, pieces.append, lambda: False)
    info = pieces[0]
    assert isinstance(info, Info)
    return info, [p for p in pieces[1:] if isinstance(p, Segment)]


def worker_pids(pool: Any) -> set[int]:
    """The pids of the PDF pool's live worker processes (pebble's own record of them)."""
    pids: set[int] = set()
    for lane in pool._lanes:
        manager = lane.pool._pool_manager
        pids.update(manager.worker_manager.workers)
    return pids
