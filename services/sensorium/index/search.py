"""Search an index through its search store (store.py), read-only.

Two units are ranked, each where it works best: **passages** (a page, a stretch of a
transcript: what a person remembers a document by) by the full-text index, BM25 over their
words, stemmed and with accents folded, `"quoted phrases"` as phrases; and **rows** (the
CLIP-sized chunks and images that were embedded) by cosine similarity to the query's vector.
A row names its passage, so both rankings meet on **places**: a page or a stretch of a file.

Modes: `text` ranks places by their passage's BM25; `vector` by their best row's cosine
similarity; `hybrid` runs both and fuses the two place rankings by reciprocal rank (RRF: each
place scores sum(1 / (60 + rank)) over the lists it is in, 60 being the constant of Cormack
et al.).

`search_files` gives one result per file: its best places (best first), a snippet of the best
place's text around the query's words with their character ranges, and the other paths whose
best passage is the same text (copies of one paper in several files are one result) or whose
bytes are the same (the files table's duplicates). `search` gives the raw rows instead, each
mode over rows alone (the text mode over the rows' own text), as before passages existed.

Filters (both): kinds, a path glob, the file's modification time, and for files a minimum score
and an offset (the next page of results).

Searching never writes: it opens the store as the last `update_store` left it. A store that lags
the index (files indexed since) still never returns a row or passage the ledger no longer calls
live, and `SearchStore.lag` says how far behind it is.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from sensorium.index.kinds import row_kinds
from sensorium.index.reader import IndexReader
from sensorium.index.store import (
    PASSAGES,
    ROWS,
    STORE_DIR,
    StoreNotReadyError,
    UpdateStats,
    VectorIndexParams,
    has_vector_index,
    import_lancedb,
    read_state,
    sql_id,
    state_matches,
    store_path,
    update_store,
)
from sensorium.index.words import Query, fold_accents, snippet

__all__ = [
    "MODES",
    "RRF_K",
    "STORE_DIR",
    "FileResult",
    "Filters",
    "Hit",
    "Lag",
    "Place",
    "SearchMode",
    "SearchStore",
    "StoreNotReadyError",
    "UpdateStats",
    "VectorIndexParams",
    "update_store",
]

SearchMode = Literal["vector", "text", "hybrid"]
MODES: tuple[SearchMode, ...] = ("vector", "text", "hybrid")
RRF_K = 60
"""Reciprocal-rank fusion constant: a place's fused score is sum(1 / (RRF_K + rank))."""
PLACES_PER_FILE = 3
"""Places a file result lists, best first."""
_RESULT_COLUMNS = (
    "unit",
    "ordinal",
    "content_sha256",
    "path",
    "kind",
    "page",
    "bbox",
    "start_seconds",
    "end_seconds",
    "text",
    "space",
    "passage",
    "section",
    "cells",
    "title",
    "author",
    "taken_at",
    "mtime",
)
_PASSAGE_COLUMNS = (
    "unit",
    "ordinal",
    "path",
    "kind",
    "page",
    "start_seconds",
    "end_seconds",
    "text",
    "text_key",
    "section",
)
_LOCATOR_COLUMNS = ("cells", "title", "author")
"""Columns a document's rows have and its passages do not (a passage has `section`): a place
found by its passage reads them from one of the passage's rows (`_fill_locators`)."""


@dataclass(frozen=True)
class Hit:
    """One row: its columns (as in the Parquet parts, vector left out) and its score in the mode
    used (cosine similarity, BM25, or the fused RRF score)."""

    score: float
    unit: str
    ordinal: int
    content_sha256: str
    path: str
    kind: str
    page: int | None
    bbox: dict[str, float] | None
    start_seconds: float | None
    end_seconds: float | None
    text: str | None
    space: str
    passage: int | None = None
    section: str | None = None
    cells: str | None = None
    title: str | None = None
    author: str | None = None
    taken_at: datetime | None = None
    mtime: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The hit as one JSON object: the Parquet column names plus `score` (times in ISO 8601)."""
        return {name: _jsonable(getattr(self, name)) for name in (*_RESULT_COLUMNS, "score")}

    def snippet(self, query_text: str | None = None, width: int = 160) -> str:
        """Up to about `width` characters of the row's text around the query's words."""
        return snippet(self.text or "", Query.parse(query_text or "").terms, width)[0]


@dataclass(frozen=True)
class Place:
    """Where in a file a result is: a page, a time range of a recording, and in a document the
    section (heading path, slide title, sheet name or line) and cell range."""

    kind: str
    score: float
    page: int | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None
    section: str | None = None
    cells: str | None = None

    def to_json(self) -> dict[str, Any]:
        """kind, score, page, start_seconds, end_seconds; section and cells where set."""
        found: dict[str, Any] = {
            "kind": self.kind,
            "score": self.score,
            "page": self.page,
            "start_seconds": self.start_seconds,
            "end_seconds": self.end_seconds,
        }
        found.update({name: value for name in ("section", "cells") if (value := getattr(self, name))})
        return found


@dataclass(frozen=True)
class FileResult:
    """One file found: its best places (best first), a snippet of the best place's text with the
    matched words' character ranges [start, end), and `files`: the other paths holding the same
    best passage or the same bytes."""

    path: str
    kind: str
    score: float
    places: tuple[Place, ...]
    files: tuple[str, ...] = ()
    snippet: str = ""
    highlights: tuple[tuple[int, int], ...] = ()
    unit: str = ""
    title: str | None = None
    """The document's title and author, where the format has them."""
    author: str | None = None

    @property
    def page(self) -> int | None:
        return self.places[0].page if self.places else None

    @property
    def start_seconds(self) -> float | None:
        return self.places[0].start_seconds if self.places else None

    @property
    def end_seconds(self) -> float | None:
        return self.places[0].end_seconds if self.places else None

    def to_json(self) -> dict[str, Any]:
        """One JSON object: path, kind, score, page / start_seconds / end_seconds of the best
        place, places (best first), files, snippet, highlights ([start, end] pairs); a document's
        section and cells (of the best place), title and author where set."""
        found: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "score": self.score,
            "page": self.page,
            "start_seconds": self.start_seconds,
            "end_seconds": self.end_seconds,
            "places": [place.to_json() for place in self.places],
            "files": list(self.files),
            "snippet": self.snippet,
            "highlights": [list(pair) for pair in self.highlights],
        }
        best = self.places[0] if self.places else None
        found.update({name: value for name in ("section", "cells") if (value := getattr(best, name, None))})
        found.update({name: value for name in ("title", "author") if (value := getattr(self, name))})
        return found


@dataclass(frozen=True)
class Filters:
    """What results may come from. Every field narrows; the default keeps everything."""

    kinds: Sequence[str] | None = None
    """Row kinds: pdf_text, pdf_image, audio, image."""
    path_glob: str | None = None
    """A shell pattern the whole path must match (`*` also matches "/"), e.g. "*.pdf",
    "/home/ana/reports/*"."""
    modified_after: datetime | None = None
    """Files modified at or after this time (a naive datetime is local time)."""
    modified_before: datetime | None = None
    """Files modified before this time."""

    def sql(self, retired: Sequence[str] = ()) -> str | None:
        clauses = []
        if self.kinds:
            valid = set(row_kinds())
            unknown = [kind for kind in self.kinds if kind not in valid]
            if unknown:
                raise ValueError(f"unknown kind {unknown[0]!r}: choose from {', '.join(sorted(valid))}")
            clauses.append("kind IN (" + ", ".join(f"'{kind}'" for kind in sorted(set(self.kinds))) + ")")
        if self.path_glob:
            clauses.append(f"regexp_like(path, '{_sql_string(glob_regex(self.path_glob))}')")
        if self.modified_after is not None:
            clauses.append(f"mtime >= timestamp '{_utc(self.modified_after)}'")
        if self.modified_before is not None:
            clauses.append(f"mtime < timestamp '{_utc(self.modified_before)}'")
        if retired:
            clauses.append("unit NOT IN (" + ", ".join(f"'{sql_id(u)}'" for u in retired) + ")")
        return " AND ".join(f"({clause})" for clause in clauses) or None


@dataclass(frozen=True)
class Lag:
    """How far the store is behind the index it was opened with."""

    files_missing: int = 0
    """Live files whose rows the store does not hold yet: they cannot be found."""
    rows_missing: int = 0
    files_retired: int = 0
    """Files the store still holds but the index no longer calls live: never returned."""
    updated_at: float | None = None
    """When the store was last brought up to date (Unix time)."""

    def __bool__(self) -> bool:
        return bool(self.files_missing or self.files_retired)

    def describe(self) -> str:
        """The lag in words, with what to do (empty when there is none)."""
        if not self:
            return ""
        parts = []
        if self.files_missing:
            parts.append(
                f"{self.files_missing} indexed files ({self.rows_missing} rows) are not searchable yet"
            )
        if self.files_retired:
            parts.append(f"{self.files_retired} changed or removed files are left out")
        return (
            "the search store lags the index: "
            + "; ".join(parts)
            + "; it is brought up to date by `sensorium index` (or an explicit store update)"
        )


@dataclass
class _Place:
    key: tuple[str, int]
    unit: str
    path: str
    kind: str
    page: int | None
    start_seconds: float | None
    end_seconds: float | None
    text: str | None = None
    text_key: str | None = None
    score: float = 0.0
    ranks: list[int] = field(default_factory=list)
    section: str | None = None
    cells: str | None = None
    title: str | None = None
    author: str | None = None
    located: bool = False
    """Its cells, title and author are known (read from a row; a passage has none)."""

    def locate(self, other: _Place | dict[str, Any]) -> None:
        """Take the locator columns this place lacks from another place or a row of it."""
        get = other.get if isinstance(other, dict) else functools.partial(getattr, other)
        for name in ("section", *_LOCATOR_COLUMNS):
            if getattr(self, name) is None:
                setattr(self, name, get(name))
        self.located = True


class SearchStore:
    """The search store of the index in `index_dir`, opened read-only.

    Raises StoreNotReadyError when the index has no store yet (or one of another index or
    format): `update_store` makes it (the index job does, at the end of every run).
    `refresh=True` first brings the store up to date: a write, for callers that own the index;
    searches never do it.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        *,
        params: VectorIndexParams | None = None,
        refresh: bool = False,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.params = params or VectorIndexParams()
        self.reader = IndexReader(self.index_dir)
        self.last_update: UpdateStats | None = None
        if refresh:
            self.last_update = update_store(self.index_dir, params=self.params)
        self._open()

    def _open(self) -> None:
        lancedb = import_lancedb()  # heavy: only for the commands that search

        path = store_path(self.index_dir)
        state = read_state(path)
        manifest = self.reader.manifest
        if not state:
            raise StoreNotReadyError(
                f"{self.index_dir} has no search store yet; `sensorium index` makes it at the end "
                "of a run (or update it explicitly)"
            )
        if not state_matches(state, manifest.fingerprint):
            raise StoreNotReadyError(
                f"the search store in {path} was made for another version of this index or of "
                "Sensorium; update the store (rerun `sensorium index`) to rebuild it"
            )
        db = lancedb.connect(path)
        self._rows: Any = db.open_table(ROWS)
        self._passages: Any = db.open_table(PASSAGES)
        self._vector_index = has_vector_index(self._rows)
        live = self.reader.live_units()
        self._live = frozenset(live)
        held: dict[str, list[int]] = state.get("units", {})
        missing = [unit for u, unit in live.items() if held.get(u, [None])[0] != unit.rows]
        self._retired = sorted(u for u in held if u not in live)
        self.lag = Lag(
            len(missing), sum(unit.rows for unit in missing), len(self._retired), state.get("updated_at")
        )
        self._duplicates: dict[str, list[str]] | None = None

    def refresh(self) -> UpdateStats:
        """Bring the store up to date (`update_store`) and reopen it."""
        self.reader.reload()
        self.last_update = update_store(self.index_dir, params=self.params)
        self._open()
        return self.last_update

    def rebuild(self) -> UpdateStats:
        """Throw the store away, build it again from the parts, and reopen it."""
        self.reader.reload()
        self.last_update = update_store(self.index_dir, params=self.params, rebuild=True)
        self._open()
        return self.last_update

    # --- per-file results -----------------------------------------------------------------

    def search_files(
        self,
        *,
        query_text: str | None = None,
        query_vector: npt.ArrayLike | None = None,
        mode: SearchMode = "hybrid",
        k: int = 10,
        offset: int = 0,
        filters: Filters | None = None,
        min_score: float | None = None,
        places: int = PLACES_PER_FILE,
    ) -> list[FileResult]:
        """The `k` best files for the query (after skipping `offset`), best first.

        `vector` mode needs `query_vector` (embedded by the caller with the index's model);
        `text` needs `query_text`; `hybrid` needs both. `min_score` drops files whose best
        place scores lower (in the mode's score). A file's places are its best `places`
        places.
        """
        query, vector = self._check(query_text, query_vector, mode, k)
        if offset < 0:
            raise ValueError("offset must be 0 or more")
        where = (filters or Filters()).sql(self._retired)
        wanted = offset + k
        candidates = max(50, 10 * wanted)
        while True:
            lists, full = self._place_rankings(query, vector, mode, candidates, where)
            ranked = lists[0] if len(lists) == 1 else _fuse(lists)
            ranked = [place for place in ranked if place.unit in self._live]
            results = self._files(ranked, query, places, min_score, wanted)
            if len(results) >= wanted or not full or candidates >= 100_000:
                return results[offset:wanted]
            candidates *= 4

    def _place_rankings(
        self,
        query: Query,
        vector: npt.NDArray[np.float32] | None,
        mode: SearchMode,
        limit: int,
        where: str | None,
    ) -> tuple[list[list[_Place]], bool]:
        lists: list[list[_Place]] = []
        full = False
        if mode in ("text", "hybrid"):
            table = self._passage_matches(query, limit, where)
            full |= table.num_rows >= limit
            lists.append(
                [
                    _place_of_passage(row, score, rank)
                    for rank, (row, score) in enumerate(_scored(table, "_score"), start=1)
                ]
            )
        if mode in ("vector", "hybrid"):
            assert vector is not None
            table = self._row_neighbours(vector, limit, where)
            full |= table.num_rows >= limit
            seen: dict[tuple[str, int], _Place] = {}
            for row, score in _scored(table, "_distance"):
                place = _place_of_row(row, 1.0 - score)  # cosine distance -> similarity
                if place.key not in seen:
                    place.ranks = [len(seen) + 1]
                    seen[place.key] = place
            lists.append(list(seen.values()))
        return lists, full

    def _files(
        self, ranked: list[_Place], query: Query, places: int, min_score: float | None, wanted: int
    ) -> list[FileResult]:
        """Files in the order of their best place, until `wanted` results (merged copies do not
        count)."""
        by_unit: dict[str, list[_Place]] = {}
        for place in ranked:
            by_unit.setdefault(place.unit, []).append(place)
        order = [best for best, *_ in by_unit.values() if min_score is None or best.score >= min_score]
        terms = query.terms
        merged: dict[str, FileResult] = {}
        results: list[FileResult] = []
        duplicates = self.duplicates()
        batch = max(wanted, 20)
        for position, best in enumerate(order):
            if position % batch == 0:
                if len(results) >= wanted:
                    break
                self._fill_texts(order[position : position + batch])
                self._fill_locators(
                    [p for best in order[position : position + batch] for p in by_unit[best.unit][:places]]
                )
            own = tuple(duplicates.get(best.path, ()))
            if best.text_key and best.text and best.text_key in merged:
                first = merged[best.text_key]
                index = results.index(first)
                results[index] = merged[best.text_key] = FileResult(
                    first.path,
                    first.kind,
                    first.score,
                    first.places,
                    (*first.files, best.path, *own),
                    first.snippet,
                    first.highlights,
                    first.unit,
                    first.title,
                    first.author,
                )
                continue
            text, highlights = snippet(best.text or "", terms)
            result = FileResult(
                best.path,
                best.kind,
                best.score,
                tuple(
                    Place(p.kind, p.score, p.page, p.start_seconds, p.end_seconds, p.section, p.cells)
                    for p in by_unit[best.unit][:places]
                ),
                own,
                text,
                tuple(highlights),
                best.unit,
                next((p.title for p in by_unit[best.unit][:places] if p.title), None),
                next((p.author for p in by_unit[best.unit][:places] if p.author), None),
            )
            results.append(result)
            if best.text_key and best.text:
                merged[best.text_key] = result
        return results

    def _fill_texts(self, places: list[_Place]) -> None:
        """Fetch the passage text of the places that do not have it yet (vector hits)."""
        wanted = [place for place in places if place.text_key is None and place.key[1] >= 0]
        for start in range(0, len(wanted), 200):
            batch = wanted[start : start + 200]
            where = " OR ".join(f"(unit = '{sql_id(p.unit)}' AND ordinal = {int(p.key[1])})" for p in batch)
            table = (
                self._passages.search()
                .where(where)
                .select(list(_PASSAGE_COLUMNS))
                .limit(len(batch) * 2)
                .to_arrow()
            )
            found = {(row["unit"], row["ordinal"]): row for row in table.to_pylist()}
            for place in batch:
                row = found.get(place.key)
                if row is not None:
                    place.text, place.text_key = row["text"], row["text_key"]

    def _fill_locators(self, places: list[_Place]) -> None:
        """Read the cells, title and author of places found by their passage from one of the
        passage's rows. Only a place with a section can have them (a document's: PDF pages and
        transcript stretches have none), so other searches make no extra query."""
        wanted = [place for place in places if not place.located and place.section is not None
                  and place.key[1] >= 0]
        for start in range(0, len(wanted), 200):
            batch = wanted[start : start + 200]
            where = " OR ".join(f"(unit = '{sql_id(p.unit)}' AND passage = {int(p.key[1])})" for p in batch)
            have = " OR ".join(f"{name} IS NOT NULL" for name in _LOCATOR_COLUMNS)
            table = (
                self._rows.search()
                .where(f"({where}) AND ({have})")
                .select(["unit", "passage", *_LOCATOR_COLUMNS])
                .limit(None)
                .to_arrow()
            )
            found = {(row["unit"], row["passage"]): row for row in table.to_pylist()}
            for place in batch:
                place.locate(found.get(place.key, {}))

    def duplicates(self) -> dict[str, list[str]]:
        """Path -> other paths with the same bytes (the files table's duplicates)."""
        if self._duplicates is None:
            self._duplicates = self.reader.duplicates()
        return self._duplicates

    # --- raw rows ---------------------------------------------------------------------------

    def search(
        self,
        *,
        query_text: str | None = None,
        query_vector: npt.ArrayLike | None = None,
        mode: SearchMode = "hybrid",
        k: int = 10,
        kinds: Sequence[str] | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The `k` best live rows for the query, best first (the raw rows: `--chunks`).

        `vector` mode needs `query_vector`; `text` needs `query_text` (BM25 over the rows' own
        text); `hybrid` needs both. `kinds` keeps rows of those kinds only (as
        `filters.kinds`).
        """
        query, vector = self._check(query_text, query_vector, mode, k)
        filters = filters or Filters()
        if kinds:
            filters = Filters(kinds, filters.path_glob, filters.modified_after, filters.modified_before)
        where = filters.sql(self._retired)
        candidates = k if mode != "hybrid" else max(50, 5 * k)
        lists: list[list[dict[str, Any]]] = []
        if vector is not None:
            table = self._row_neighbours(vector, candidates, where)
            lists.append([{**row, "_score": 1.0 - distance} for row, distance in _scored(table, "_distance")])
        if mode in ("text", "hybrid"):
            from lancedb.query import MatchQuery

            # A MatchQuery takes the text as words: no query syntax for a user's text to break.
            match = MatchQuery(query.words or " ".join(query.phrases), "text")  # type: ignore[call-arg]
            search = self._rows.search(match, query_type="fts")
            if where:
                search = search.where(where, prefilter=True)
            table = search.select([*_RESULT_COLUMNS, "_score"]).limit(candidates).to_arrow()
            lists.append([{**row, "_score": score} for row, score in _scored(table, "_score")])
        ranked = lists[0] if len(lists) == 1 else _fuse_rows(lists)
        hits = [_hit(row) for row in ranked if row["unit"] in self._live]
        return hits[:k]

    # --- the two rankings ---------------------------------------------------------------------

    def _passage_matches(self, query: Query, limit: int, where: str | None) -> pa.Table:
        from lancedb.query import BooleanQuery, MatchQuery, Occur, PhraseQuery

        words = fold_accents(query.words)
        phrases = [PhraseQuery(fold_accents(p), "words") for p in query.phrases]  # type: ignore[call-arg]
        fts: Any
        if not phrases:
            fts = MatchQuery(words, "words")  # type: ignore[call-arg]
        else:
            clauses: list[Any] = [(Occur.MUST, phrase) for phrase in phrases]
            if words:
                clauses.append((Occur.SHOULD, MatchQuery(words, "words")))  # type: ignore[call-arg]
            fts = clauses[0][1] if len(clauses) == 1 else BooleanQuery(clauses)
        search = self._passages.search(fts, query_type="fts")
        if where:
            search = search.where(where, prefilter=True)
        result: pa.Table = search.select([*_PASSAGE_COLUMNS, "_score"]).limit(limit).to_arrow()
        return result

    def _row_neighbours(self, vector: npt.NDArray[np.float32], limit: int, where: str | None) -> pa.Table:
        search = self._rows.search(vector, query_type="vector").distance_type("cosine")
        if self._vector_index:
            search = search.nprobes(self.params.nprobes)
            if self.params.refine_factor:
                search = search.refine_factor(self.params.refine_factor)
        if where:
            search = search.where(where, prefilter=True)
        result: pa.Table = search.select([*_RESULT_COLUMNS, "_distance"]).limit(limit).to_arrow()
        return result

    def _check(
        self, query_text: str | None, query_vector: npt.ArrayLike | None, mode: SearchMode, k: int
    ) -> tuple[Query, npt.NDArray[np.float32] | None]:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
        if k < 1:
            raise ValueError("k must be at least 1")
        wants_vector, wants_text = mode in ("vector", "hybrid"), mode in ("text", "hybrid")
        if wants_vector and query_vector is None:
            raise ValueError(f"{mode} search needs a query vector")
        query = Query.parse(query_text or "")
        if wants_text and not query:
            raise ValueError(f"{mode} search needs a query text")
        return query, self._check_vector(query_vector) if wants_vector else None

    def _check_vector(self, query_vector: npt.ArrayLike | None) -> npt.NDArray[np.float32]:
        vector = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        dimension = self.reader.manifest.space.dimension
        if vector.shape[0] != dimension:
            raise ValueError(
                f"the query vector has {vector.shape[0]} dimensions; the index's space has {dimension}"
            )
        if not np.all(np.isfinite(vector)) or not np.any(vector):
            raise ValueError("the query vector must be finite and not all zeros")
        return vector


def glob_regex(pattern: str) -> str:
    """A shell pattern as an anchored regular expression that LanceDB's filters (Rust's regex)
    understand: `*` any characters ("/" included), `?` one, `[...]` a set (`[!...]` not)."""
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif (
            char == "["
            and (close := pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in "!]" else i + 1)) > 0
        ):
            body = pattern[i + 1 : close]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    out.append("$")
    return "".join(out)


def _sql_string(value: str) -> str:
    return value.replace("'", "''")


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is the user's local time
    moment = moment.astimezone(UTC)
    # %Y does not pad years before 1000 ("1-01-01"), which the filter's parser refuses.
    return f"{moment.year:04d}-" + moment.strftime("%m-%d %H:%M:%S.%f")


def _scored(table: pa.Table, column: str) -> list[tuple[dict[str, Any], float]]:
    scores = table.column(column).to_pylist()
    rows = table.drop_columns([column]).to_pylist()
    return [(row, float(score)) for row, score in zip(rows, scores, strict=True)]


def _place_of_passage(row: dict[str, Any], score: float, rank: int) -> _Place:
    return _Place(
        (row["unit"], int(row["ordinal"])),
        row["unit"],
        row["path"],
        row["kind"],
        row["page"],
        row["start_seconds"],
        row["end_seconds"],
        row["text"],
        row["text_key"],
        score,
        [rank],
        section=row["section"],
    )


def _place_of_row(row: dict[str, Any], score: float) -> _Place:
    passage = row["passage"]
    # A row without a passage (an image file) is a place of its own.
    key = (row["unit"], int(passage) if passage is not None else -1 - int(row["ordinal"]))
    place = _Place(
        key,
        row["unit"],
        row["path"],
        row["kind"],
        row["page"],
        row["start_seconds"],
        row["end_seconds"],
        score=score,
    )
    place.locate(row)
    if passage is None:
        place.text, place.text_key = row["text"], ""
    return place


def _fuse(lists: Sequence[Sequence[_Place]]) -> list[_Place]:
    """Reciprocal-rank fusion of place rankings; ties go to the place ranked best in any list.
    A place keeps the first list's details (the passage's text, when text ranked it)."""
    fused: dict[tuple[str, int], _Place] = {}
    for ranked in lists:
        for rank, place in enumerate(ranked, start=1):
            entry = fused.get(place.key)
            if entry is None:
                entry = fused[place.key] = _Place(
                    place.key,
                    place.unit,
                    place.path,
                    place.kind,
                    place.page,
                    place.start_seconds,
                    place.end_seconds,
                    place.text,
                    place.text_key,
                    section=place.section,
                    cells=place.cells,
                    title=place.title,
                    author=place.author,
                    located=place.located,
                )
            elif place.located and not entry.located:
                entry.locate(place)
            entry.score += 1.0 / (RRF_K + rank)
            entry.ranks.append(rank)
    return sorted(fused.values(), key=lambda place: (-place.score, min(place.ranks)))


def _fuse_rows(lists: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Reciprocal-rank fusion of row rankings (raw rows)."""
    fused: dict[tuple[str, int], dict[str, Any]] = {}
    for ranked in lists:
        for rank, row in enumerate(ranked, start=1):
            entry = fused.setdefault((row["unit"], row["ordinal"]), {**row, "_score": 0.0, "_best": rank})
            entry["_score"] += 1.0 / (RRF_K + rank)
            entry["_best"] = min(entry["_best"], rank)
    return sorted(fused.values(), key=lambda row: (-row["_score"], row["_best"]))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _hit(row: dict[str, Any]) -> Hit:
    return Hit(score=row["_score"], **{name: row[name] for name in _RESULT_COLUMNS})
