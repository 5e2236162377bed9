"""The search service's engine interface: one search of the index the process was given
(`SENSORIUM_SEARCH__INDEX_DIR`), as `sensorium search` asks it. The request and the answer are
the query path's own types (`sensorium.index.query`): `SearchRequest` in, `Answer` (per-file
`FileResult`s, or raw `Hit`s with `chunks`, and the store's lag) out.
"""

from __future__ import annotations

from typing import Protocol

from sensorium.contract import EngineKey
from sensorium.index.query import Answer, SearchRequest

__all__ = ["SEARCH", "Answer", "SearchEngine", "SearchRequest"]


class SearchEngine(Protocol):
    """Search, in this process or on a server (see `sensorium.engines`)."""

    async def search(self, request: SearchRequest, image: bytes | None = None) -> Answer:
        """The answer to `request`; `image` (with `request.query` empty) searches by an image.
        Raises `SensoriumError` (INVALID_REQUEST for a bad request, NOT_READY when the index
        cannot be read)."""
        ...


SEARCH: EngineKey[SearchEngine] = EngineKey("search")
