"""The search service's runtime: one index (`SENSORIUM_SEARCH__INDEX_DIR`), read-only.

It keeps a resident `QueryEngine`: the text tower loaded, the store open while the index's
files are unchanged (`index_signature`), opened again before the next search when the index
job added or retired parts, so a running service sees a rerun's rows without a restart and
never returns a retired one. Nothing here writes the index.

Queries run on worker threads, one at a time per process (the engine keeps one open store; a
query takes milliseconds to tens of them); replicas scale out (deploy/k8s/overlays/search).
An image, or a text where no text tower was exported, is embedded by the embedding service of
the same process (`SENSORIUM_SERVICES` must include embedding for that).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorium.contract import Runtime, RuntimeContext
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.index.query import Answer, QueryEngine, QueryError, SearchRequest

if TYPE_CHECKING:
    from sensorium.embedding.api import Vector

log = logging.getLogger("sensorium.search")

MAX_K = 1000
"""Most results one search returns (k + offset)."""
_REASONS = {"usage": Reason.INVALID_REQUEST, "index": Reason.NOT_READY, "space": Reason.NOT_READY,
            "no_tower": Reason.NOT_READY, "internal": Reason.INTERNAL_ERROR}


class SearchRuntime:
    """The search of one index, for the server and the one seam (it is the `SearchEngine`)."""

    def __init__(self, context: RuntimeContext) -> None:
        self.settings = context.settings
        self.index_dir: Path | None = context.settings.search.index_dir
        self._peers: Mapping[str, Runtime] = context.peers
        self.engine = QueryEngine(context.settings, resident=True)
        self._lock = threading.Lock()  # the engine's open store and tower: one query at a time
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search")
        self._tower = False

    async def start(self) -> None:
        """Open the index's store and load the text tower; a search of each mode warms them."""
        if self.index_dir is None:
            raise ServiceStartError(
                "the search service needs an index: set SENSORIUM_SEARCH__INDEX_DIR to the folder "
                "`sensorium index --out` wrote (mounted read-only)"
            )
        try:
            store = await self._run(self.engine.store, self.index_dir)
            await self._run(lambda: self.engine.tower)
            self._tower = True
        except QueryError as exc:
            if exc.kind != "no_tower":
                raise ServiceStartError(exc.message) from None
            if "embedding" not in self._peers:
                raise ServiceStartError(
                    f"{exc.message}; or host the embedding service in this process "
                    "(SENSORIUM_SERVICES=search,embedding) to embed queries with torch"
                ) from None
            log.warning("no exported text tower: queries are embedded by the embedding service "
                        "(%s)", exc.message)
        log.info("search index open", extra={"index": str(self.index_dir),
                                              "lag": store.lag.describe() or "none"})
        words = "warm up"
        await self.search(SearchRequest(query=words, mode="text", k=1))
        if self._tower:
            await self.search(SearchRequest(query=words, mode="vector", k=1))

    async def search(self, request: SearchRequest, image: bytes | None = None) -> Answer:
        if self.index_dir is None:
            raise SensoriumError(Reason.NOT_READY, "the search service has no index")
        if request.k + request.offset > MAX_K:
            raise SensoriumError(Reason.INVALID_REQUEST,
                                 f"k + offset is at most {MAX_K}; ask for the next page with offset")
        if image is not None and request.mode != "vector":
            raise SensoriumError(Reason.INVALID_REQUEST, "an image searches by meaning only: mode vector")
        if image is None and not request.query.strip():
            raise SensoriumError(Reason.INPUT_EMPTY, "the query is empty; give at least one word or an image")
        vector = None
        if image is not None or (request.mode != "text" and not self._tower):
            vector = await self._embed(request.query, image)
        answer: Answer = await self._run(self._answer, request, vector)
        return answer

    def _answer(self, request: SearchRequest, vector: Vector | None) -> Answer:
        assert self.index_dir is not None
        try:
            return self.engine.answer(self.index_dir, request, vector)
        except QueryError as exc:
            raise SensoriumError(_REASONS[exc.kind], exc.message) from None

    async def _embed(self, text: str, image: bytes | None) -> Vector:
        from sensorium.embedding.api import EmbeddingEngine
        from sensorium.index.layout import IndexMismatchError
        from sensorium.index.query import embed_query

        assert self.index_dir is not None
        peer: Any = self._peers.get("embedding")
        if peer is None:
            raise SensoriumError(
                Reason.NOT_HOSTED, "searching by image needs the embedding service in the search "
                "service's process (SENSORIUM_SERVICES=search,embedding)")
        engine: EmbeddingEngine = peer
        store = await self._run(self._store)
        try:
            return await embed_query(engine, store.reader.manifest, text=text, image=image)
        except IndexMismatchError as exc:
            raise SensoriumError(Reason.NOT_READY, str(exc)) from None

    def _store(self) -> Any:
        assert self.index_dir is not None
        try:
            return self.engine.store(self.index_dir)
        except QueryError as exc:
            raise SensoriumError(_REASONS[exc.kind], exc.message) from None

    async def _run(self, function: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return function(*args)

        return await asyncio.get_running_loop().run_in_executor(self._executor, locked)

    async def close(self, grace: float | None = None) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.close()
