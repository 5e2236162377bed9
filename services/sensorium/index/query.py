"""A text query against an index, as `sensorium search` answers it: open the index's store,
embed the query with the exported text tower when the mode needs a vector (never for `text`),
check that the tower is the model the index was built with, search.

`QueryEngine` is that path. A command makes one and asks once (`search_index`); the per-user
query process (`sensorium.index.query_daemon`) keeps one: the text tower stays loaded, and a
store stays open while the index's files are unchanged (`index_signature`), so a repeated
query pays only for the lookup, and an index that changed is opened again before it is
searched (an answer never comes from an index older than its parts).

Nothing here imports torch, open_clip or gRPC; onnxruntime only for a query that needs a
vector, lancedb only when a store is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sensorium.embedding.api import EmbeddingEngine, ImageOutcome, TextOutcome, Vector
    from sensorium.embedding.text_tower import TextTower
    from sensorium.index.layout import Manifest
    from sensorium.index.search import FileResult, Hit, SearchStore
    from sensorium.settings import Settings

Mode = Literal["hybrid", "vector", "text"]
ErrorKind = Literal["usage", "index", "space", "no_tower", "internal"]

Signature = tuple[tuple[str, int, int], ...]
"""An index's files as (relative path, size, mtime in ns): any commit, part, manifest or store
version changes it."""


class QueryError(Exception):
    """A query that cannot be answered. `kind`: "usage" (bad mode, k, kind filter or empty
    text), "index" (no index there, or a broken one), "space" (the model here is not the
    index's), "no_tower" (no exported text tower: `sensorium models embedding`; a front end
    with torch can embed the query the old way), "internal"."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message


@dataclass(frozen=True)
class SearchRequest:
    """One search, with every option of `sensorium search` (and of the gRPC SearchService)."""

    query: str = ""
    """The query text ("" for a query by image, whose vector the caller passes)."""
    mode: Mode = "hybrid"
    k: int = 10
    offset: int = 0
    kinds: tuple[str, ...] | None = None
    path_glob: str | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    min_score: float | None = None
    chunks: bool = False
    """The raw rows (`Hit`) instead of one result per file (`FileResult`)."""

    def to_json(self) -> dict[str, Any]:
        """As the query process receives it (times in ISO 8601)."""
        return {
            "query": self.query, "mode": self.mode, "k": self.k, "offset": self.offset,
            "kinds": list(self.kinds) if self.kinds else None, "path_glob": self.path_glob,
            "modified_after": self.modified_after.isoformat() if self.modified_after else None,
            "modified_before": self.modified_before.isoformat() if self.modified_before else None,
            "min_score": self.min_score, "chunks": self.chunks,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchRequest:
        """The request `to_json` made; QueryError("usage") for a field of the wrong type."""
        try:
            kinds = data.get("kinds")
            request = cls(
                query=str(data["query"]), mode=data.get("mode", "hybrid"), k=_int(data.get("k", 10)),
                offset=_int(data.get("offset", 0)),
                kinds=tuple(str(kind) for kind in kinds) if kinds else None,
                path_glob=_text(data.get("path_glob")),
                modified_after=_time(data.get("modified_after")),
                modified_before=_time(data.get("modified_before")),
                min_score=None if data.get("min_score") is None else float(data["min_score"]),
                chunks=bool(data.get("chunks", False)),
            )
        except (TypeError, ValueError) as exc:
            raise QueryError("usage", f"a malformed search request: {exc}") from exc
        return request


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a whole number")
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


@dataclass
class Answer:
    """What a search found: one result per file, or the raw rows with `chunks`; and how far the
    store lags the index ("" when it does not)."""

    results: list[FileResult] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    lag: str = ""

    def items(self, query: str) -> list[dict[str, Any]]:
        """The results as `sensorium search --json` prints them (a raw row with its snippet for
        `query` under "snippet", which the JSON output leaves out)."""
        if self.hits:
            return [hit_json(hit, query) for hit in self.hits]
        return [result.to_json() for result in self.results]


@dataclass
class _OpenStore:
    signature: Signature
    store: SearchStore


class QueryEngine:
    """Answers text queries for any index with one model's text tower (from `settings`).

    `resident`: the engine lives on (the query process): the tower is loaded for repeated use
    (weights prepacked by ONNX Runtime) and stores are kept open between queries.
    """

    def __init__(self, settings: Settings, *, resident: bool = False) -> None:
        self.settings = settings
        self.resident = resident
        self._tower: TextTower | None = None
        self._stores: dict[Path, _OpenStore] = {}

    @property
    def tower(self) -> TextTower:
        """The text tower, loaded on first use."""
        if self._tower is None:
            from sensorium.embedding.text_tower import TextTowerError, load_text_tower

            embedding = self.settings.embedding
            try:
                self._tower = load_text_tower(
                    self.settings.model_dir, embedding.model, embedding.pretrained,
                    threads=embedding.cpu_threads, prepack=self.resident,
                )
            except TextTowerError as exc:
                raise QueryError("no_tower", str(exc)) from exc
        return self._tower

    def store(self, index_dir: Path) -> SearchStore:
        """The index's store, opened again when the index's files changed since it was opened."""
        from sensorium.index.layout import IndexStoreError
        from sensorium.index.search import SearchStore, VectorIndexParams

        key = Path(os.path.abspath(index_dir))
        # Taken before opening: a change made while the store opens is seen by the next query.
        # (Today's store refreshes itself on open; the first reopen after a change then sees
        # its own writes as a change once more.)
        signature = index_signature(key) if self.resident else ()
        cached = self._stores.get(key)
        if cached is not None and cached.signature == signature:
            return cached.store
        try:
            store = SearchStore(key, params=VectorIndexParams.from_settings(self.settings.index))
        except IndexStoreError as exc:
            raise QueryError("index", str(exc)) from exc
        if self.resident:
            self._stores[key] = _OpenStore(signature, store)
        return store

    def search(
        self, index_dir: Path, query: str, *, mode: Mode = "hybrid", k: int = 10,
        kinds: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The `k` best hits for the text `query`, as `SearchStore.search` ranks them."""
        from sensorium.embedding.text_tower import TextTowerError

        if not query.strip():
            raise QueryError("usage", "the query is empty; give at least one word")
        if mode not in ("hybrid", "vector", "text"):
            raise QueryError("usage", f"mode {mode!r}: choose hybrid, vector or text")
        store = self.store(index_dir)
        vector = None
        if mode != "text":
            tower = self.tower
            try:
                tower.check_space(store.reader.manifest.space)
            except TextTowerError as exc:
                raise QueryError("space", str(exc)) from exc
            vector = tower.embed(query)
        try:
            return store.search(query_text=query, query_vector=vector, mode=mode, k=k, kinds=kinds)
        except ValueError as exc:  # k, kinds: the store names what is wrong
            raise QueryError("usage", str(exc)) from exc

    def answer(self, index_dir: Path, request: SearchRequest, vector: Vector | None = None) -> Answer:
        """The answer to `request` as `sensorium search` prints it: files (`search_files`) or,
        with `chunks`, raw rows. The query is embedded by the text tower when the mode needs a
        vector and `vector` (embedded elsewhere: an image, or the torch path) is not given."""
        from sensorium.embedding.text_tower import TextTowerError
        from sensorium.index.search import Filters

        if request.mode not in ("hybrid", "vector", "text"):
            raise QueryError("usage", f"mode {request.mode!r}: choose hybrid, vector or text")
        if vector is None and not request.query.strip():
            raise QueryError("usage", "the query is empty; give at least one word")
        if request.k < 1 or request.offset < 0:
            raise QueryError("usage", "k must be at least 1 and offset at least 0")
        store = self.store(index_dir)
        if request.mode != "text" and vector is None:
            tower = self.tower
            try:
                tower.check_space(store.reader.manifest.space)
            except TextTowerError as exc:
                raise QueryError("space", str(exc)) from exc
            vector = tower.embed(request.query)
        filters = Filters(request.kinds, request.path_glob, request.modified_after, request.modified_before)
        text = request.query or None
        answer = Answer(lag=store.lag.describe())
        try:
            if request.chunks:
                hits = store.search(query_text=text, query_vector=vector, mode=request.mode,
                                    k=request.offset + request.k, filters=filters)
                answer.hits = hits[request.offset:]
            else:
                answer.results = store.search_files(
                    query_text=text, query_vector=vector, mode=request.mode, k=request.k,
                    offset=request.offset, filters=filters, min_score=request.min_score)
        except ValueError as exc:  # kinds, a vector of the wrong size: the store names it
            raise QueryError("usage", str(exc)) from exc
        return answer

    def close(self) -> None:
        self._stores.clear()
        self._tower = None


def search_index(
    settings: Settings, index_dir: Path, query: str, *, mode: Mode = "hybrid", k: int = 10,
    kinds: Sequence[str] | None = None,
) -> list[Hit]:
    """One query from a fresh engine: what `sensorium search QUERY` does without a query process."""
    return QueryEngine(settings).search(index_dir, query, mode=mode, k=k, kinds=kinds)


def hit_json(hit: Hit, query: str) -> dict[str, Any]:
    """A hit as the query process sends it: `Hit.to_json()` plus its snippet for `query`."""
    return {**hit.to_json(), "snippet": hit.snippet(query)}


def index_signature(index_dir: Path) -> Signature:
    """The index's files that a query depends on: every file of every shard (manifests, ledger
    segments, parts, files tables), and of the store its state and its table versions, not
    its data files (a new version names them). Hidden files (temporaries) are left out. Empty
    when `index_dir` is not a directory."""
    found: list[tuple[str, int, int]] = []
    root = str(index_dir)
    for folder, subfolders, files in os.walk(root):
        relative = os.path.relpath(folder, root)
        if relative == ".":
            subfolders[:] = [d for d in subfolders if d.startswith("shard-") or d == ".search"]
        elif relative == ".search":
            subfolders[:] = [d for d in subfolders if d.endswith(".lance")]
        elif relative.startswith(".search" + os.sep):
            # Inside the store's table: only its version files.
            subfolders[:] = [d for d in subfolders if d == "_versions"]
            if not relative.endswith("_versions"):
                files = []
        else:
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or name == "lock":
                continue
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # removed while we looked: the next look sees the change
                continue
            found.append((os.path.relpath(path, root), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


async def embed_query(engine: EmbeddingEngine, manifest: Manifest, *, text: str = "",
                      image: bytes | None = None) -> Vector:
    """`text` (or `image`) embedded by `engine`'s model (torch in this process, or a server:
    the one seam) as a float32 vector, once the model is checked to be the index's
    (`IndexMismatchError` otherwise). `sensorium search` uses it for images, with --server, and
    where no text tower was exported; bench/search.py times it with one engine kept open."""
    from sensorium.errors import Reason, SensoriumError
    from sensorium.index.layout import check_space

    check_space(manifest, (await engine.describe()).space)
    outcome: TextOutcome | ImageOutcome
    if image is not None:
        (outcome,) = await engine.embed_images([image])
    else:
        (outcome,) = await engine.embed_texts([text])
    if outcome.error is not None or outcome.vector is None:
        error = outcome.error or SensoriumError(Reason.INTERNAL_ERROR, "no vector came back")
        raise SensoriumError(error.reason, f"the query cannot be embedded: {error.message}",
                             error.metadata, setting=error.setting)
    return outcome.vector
