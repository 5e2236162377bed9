"""Search an index: an embedded LanceDB store built from the parts, in `DIR/.search/`.

The Parquet parts stay the source of truth; the store is a derived copy of the live rows that
LanceDB can search fast: a vector index (IVF_SQ: IVF partitions holding 8-bit scalar-quantised
vectors, the best candidates re-ranked on the full vectors) once the table is large enough to
need one, and a full-text index (BM25) on `text`. It can be deleted at any time; the next `refresh()` rebuilds
it from the parts.

`refresh()` makes the store match the index's live rows, by unit (one indexed file): units no
longer live (files changed, removed, or re-indexed) are deleted, units that became live are
read from the parts their ledger entries name and added, and a unit whose row count in the
store differs from its entry's is replaced. Units are reconciled rather than parts tracked,
because a file's rows become live only when its entry is committed, possibly after the part
that holds them was written. A refresh killed half-way leaves a store the next refresh repairs.

Modes: `vector` ranks by cosine similarity to the query vector; `text` by BM25 over the rows'
text; `hybrid` runs both and fuses the two rankings by reciprocal rank (RRF: each row scores
sum(1 / (60 + rank)) over the lists it is in, 60 being the constant of Cormack et al.).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sensorium.index.kinds import row_kinds
from sensorium.index.layout import IndexLayoutError, write_atomic
from sensorium.index.reader import IndexReader, LiveUnit
from sensorium.settings import IndexSettings

SearchMode = Literal["vector", "text", "hybrid"]
MODES: tuple[SearchMode, ...] = ("vector", "text", "hybrid")
RRF_K = 60
"""Reciprocal-rank fusion constant: a row's fused score is sum(1 / (RRF_K + rank))."""
STORE_DIR = ".search"
_TABLE = "rows"
_STATE = "state.json"
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
)
_LOCATOR_COLUMNS = ("section", "cells", "title", "author")
"""Columns of the rows that have them (documents): in a hit's JSON only when set."""


@dataclass(frozen=True)
class VectorIndexParams:
    """How the store's vector index (IVF_SQ) is built and queried; tuned in bench/search.py,
    results in docs/benchmarks.md."""

    min_rows: int = IndexSettings().vector_index_min_rows
    """Below this many rows there is no vector index: exact search over all vectors is fast
    enough and exact."""
    nprobes: int = IndexSettings().search_nprobes
    """IVF partitions searched per query (of sqrt(rows) partitions)."""
    refine_factor: int = IndexSettings().search_refine_factor
    """k x this candidates, found on 8-bit scalar-quantised codes, are re-ranked on the full
    float32 vectors; 0 = none (results ranked on the codes)."""

    @classmethod
    def from_settings(cls, settings: IndexSettings) -> VectorIndexParams:
        return cls(settings.vector_index_min_rows, settings.search_nprobes, settings.search_refine_factor)

    @staticmethod
    def partitions(rows: int) -> int:
        """IVF partitions for a table of `rows` rows: sqrt(rows), the usual balance between
        the cost of picking partitions and of scanning them (1,000 at a million rows)."""
        return max(1, math.isqrt(rows))


@dataclass(frozen=True)
class Hit:
    """One search result: the row's columns (as in the Parquet parts, vector left out) and its
    score in the mode used (cosine similarity, BM25, or the fused RRF score)."""

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
    section: str | None = None
    cells: str | None = None
    title: str | None = None
    author: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The hit as one JSON object: the Parquet column names plus `score`; the locator and
        metadata columns of documents (section, cells, title, author) only where set."""
        found = {name: getattr(self, name) for name in (*_RESULT_COLUMNS, "score")}
        found.update({name: value for name in _LOCATOR_COLUMNS if (value := getattr(self, name)) is not None})
        return found

    def where(self) -> str:
        """Where in the file the hit is, for a person: 'page 2', 'page 3 Results', 'Budget
        A1:C40', '00:01.50-00:04.00'."""
        parts = [f"page {self.page}"] if self.page is not None else []
        parts += [value for value in (self.section, self.cells) if value]
        if not parts and self.start_seconds is not None and self.end_seconds is not None:
            parts.append(f"{_clock(self.start_seconds)}-{_clock(self.end_seconds)}")
        return " ".join(parts)

    def snippet(self, query_text: str | None = None, width: int = 160) -> str:
        """Up to `width` characters of the row's text around the first query word it contains."""
        text = " ".join((self.text or "").split())
        if len(text) <= width:
            return text
        start = 0
        lowered = text.lower()
        for word in (query_text or "").lower().split():
            found = lowered.find(word)
            if found >= 0:
                start = max(0, min(found - width // 3, len(text) - width))
                break
        piece = text[start : start + width]
        return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


@dataclass
class RefreshStats:
    """What a refresh changed in the store."""

    rebuilt: bool = False
    units_added: int = 0
    units_removed: int = 0
    rows_added: int = 0
    rows: int = 0
    """Rows in the store afterwards."""
    vector_index: bool = False
    """Whether the store has a vector index (it has none below VectorIndexParams.min_rows)."""


@dataclass
class _Ranked:
    row: dict[str, Any]
    score: float
    ranks: list[int] = field(default_factory=list)


class SearchStore:
    """The search store of the index in `index_dir` (created on first use).

    `refresh=True` brings it up to date with the parts before the first search (see the module
    docstring); `refresh=False` searches the store as it is (still never returning rows that
    the ledger no longer calls live).
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        *,
        params: VectorIndexParams | None = None,
        refresh: bool = True,
    ) -> None:
        import lancedb  # heavy (~0.3 s): only for the commands that search

        self.index_dir = Path(index_dir)
        self.params = params or VectorIndexParams()
        self.reader = IndexReader(self.index_dir)
        self._path = self.index_dir / STORE_DIR
        if self._path.is_symlink() or (self._path.exists() and not self._path.is_dir()):
            # Search writes the store: a link would make it write wherever the link points.
            raise IndexLayoutError(
                f"{self._path} is a link or not a folder; the search store must be a folder of "
                f"the index itself. Remove it (search builds it again from the parts)"
            )
        self._path.mkdir(exist_ok=True)
        self._db = lancedb.connect(self._path)
        self._table: Any = None
        self._live: frozenset[str] = frozenset(self.reader.live_units())
        if refresh:
            self.refresh()
        else:
            self._table = self._open_table()

    # --- keeping the store in step with the parts ----------------------------------------

    def refresh(self) -> RefreshStats:
        """Make the store hold exactly the live rows of the index (see the module docstring)."""
        with self._locked():
            self.reader.reload()
            stats = RefreshStats()
            if not self._state_matches():
                self._drop()
                stats.rebuilt = True
            table = self._open_table() or self._create_table()
            live = self.reader.live_units()
            self._live = frozenset(live)
            stored = _unit_counts(table)
            stale = [u for u, n in stored.items() if u not in live or live[u].rows != n]
            missing = [live[u] for u in live if stored.get(u) != live[u].rows]
            for batch in _batches(stale, 500):
                table.delete("unit IN (" + ", ".join(f"'{_sql_id(u)}'" for u in batch) + ")")
            stats.units_removed = len(stale)
            stats.units_added = len(missing)
            stats.rows_added = self._add(table, missing)
            self._maintain(table, changed=bool(stale or missing))
            self._table = table
            stats.rows = table.count_rows()
            stats.vector_index = self._has_vector_index(table)
            return stats

    def rebuild(self) -> RefreshStats:
        """Throw the store away and build it again from the parts."""
        with self._locked():
            self._drop()
        stats = self.refresh()
        stats.rebuilt = True
        return stats

    def _add(self, table: Any, units: Sequence[LiveUnit]) -> int:
        added = 0
        pending: list[pa.Table] = []
        pending_rows = 0
        # Few large adds: each add is a LanceDB commit (a version and a data file).
        for part in self.reader.live_rows(units):
            pending.append(part)
            pending_rows += part.num_rows
            if pending_rows >= 100_000:
                table.add(pa.concat_tables(pending))
                added += pending_rows
                pending, pending_rows = [], 0
        if pending_rows:
            table.add(pa.concat_tables(pending))
            added += pending_rows
        return added

    def _maintain(self, table: Any, *, changed: bool) -> None:
        from lancedb.index import FTS, IvfSq

        rows = table.count_rows()
        names = {index.index_type: index for index in table.list_indices()}
        if "FTS" not in names:
            table.create_index("text", config=FTS(), replace=True)
        state = self._state()
        trained = int(state.get("vector_index_rows", 0))
        has_vector = self._has_vector_index(table)
        # Partitions are trained once; after the table grew fourfold they are too few (and
        # too big), so the index is trained again, on the whole table.
        if rows >= self.params.min_rows and (not has_vector or rows > 4 * trained):
            config = IvfSq(distance_type="cosine", num_partitions=self.params.partitions(rows))
            table.create_index("vector", config=config, replace=True)
            self._write_state({**state, "vector_index_rows": rows})
        elif changed:
            # Folds new rows into the existing indexes (no retraining), compacts small data
            # files, and drops files of versions older than an hour.
            table.optimize(cleanup_older_than=timedelta(hours=1))

    @staticmethod
    def _has_vector_index(table: Any) -> bool:
        return any(index.columns == ["vector"] for index in table.list_indices())

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self._path / _STATE).read_text())
        except (OSError, ValueError):
            return {}
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        text = json.dumps(state, sort_keys=True) + "\n"
        write_atomic(self._path / _STATE, lambda handle: handle.write(text.encode()))

    def _state_matches(self) -> bool:
        return bool(self._state().get("fingerprint") == self.reader.manifest.fingerprint)

    def _create_table(self) -> Any:
        table = self._db.create_table(_TABLE, schema=self.reader.schema)
        manifest = self.reader.manifest
        self._write_state({"fingerprint": manifest.fingerprint, "space_id": manifest.space.id})
        return table

    def _open_table(self) -> Any:
        try:
            return self._db.open_table(_TABLE)
        except (FileNotFoundError, ValueError):
            return None

    def _drop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._db.drop_table(_TABLE)
        shutil.rmtree(self._path / f"{_TABLE}.lance", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self._path / _STATE).unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One refresh at a time per index: two concurrent searches must not both add a unit.
        with open(self._path / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- queries ------------------------------------------------------------------------

    def search(
        self,
        *,
        query_text: str | None = None,
        query_vector: npt.ArrayLike | None = None,
        mode: SearchMode = "hybrid",
        k: int = 10,
        kinds: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The `k` best live rows for the query, best first.

        `vector` mode needs `query_vector` (embedded by the caller with the index's model);
        `text` needs `query_text`; `hybrid` needs both. `kinds` keeps rows of those kinds only
        (pdf_text, pdf_image, audio, image).
        """
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
        if k < 1:
            raise ValueError("k must be at least 1")
        wants_vector, wants_text = mode in ("vector", "hybrid"), mode in ("text", "hybrid")
        if wants_vector and query_vector is None:
            raise ValueError(f"{mode} search needs a query vector")
        if wants_text and not (query_text and query_text.strip()):
            raise ValueError(f"{mode} search needs a query text")
        where = _kind_filter(kinds)
        table = self._table if self._table is not None else self._open_table()
        if table is None or table.count_rows() == 0:
            return []
        candidates = k if mode != "hybrid" else max(50, 5 * k)
        lists: list[list[_Ranked]] = []
        if wants_vector:
            lists.append(self._vector(table, self._check_vector(query_vector), candidates, where))
        if wants_text:
            assert query_text is not None
            lists.append(self._text(table, query_text, candidates, where))
        ranked = lists[0] if len(lists) == 1 else _fuse(lists)
        # The store may lag the ledger (refresh=False, or a writer committed since): a row the
        # ledger no longer calls live is never returned.
        hits = [_hit(item) for item in ranked if item.row["unit"] in self._live]
        return hits[:k]

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

    def _vector(
        self, table: Any, vector: npt.NDArray[np.float32], limit: int, where: str | None
    ) -> list[_Ranked]:
        query = table.search(vector, query_type="vector").distance_type("cosine")
        if self._has_vector_index(table):
            query = query.nprobes(self.params.nprobes)
            if self.params.refine_factor:
                query = query.refine_factor(self.params.refine_factor)
        if where:
            query = query.where(where, prefilter=True)
        result = query.select([*_RESULT_COLUMNS, *_LOCATOR_COLUMNS, "_distance"]).limit(limit).to_arrow()
        scores = pc.subtract(1.0, result.column("_distance")).to_pylist()  # cosine similarity
        return [
            _Ranked(row, float(score), [i])
            for i, (row, score) in enumerate(zip(_rows(result), scores, strict=True))
        ]

    def _text(self, table: Any, text: str, limit: int, where: str | None) -> list[_Ranked]:
        from lancedb.query import MatchQuery

        # A MatchQuery takes the text as words: no query syntax for a user's text to break.
        match = MatchQuery(text, "text")  # type: ignore[call-arg]  # mypy misses its pydantic defaults
        query = table.search(match, query_type="fts")
        if where:
            query = query.where(where, prefilter=True)
        result = query.select([*_RESULT_COLUMNS, *_LOCATOR_COLUMNS, "_score"]).limit(limit).to_arrow()
        scores = result.column("_score").to_pylist()
        return [
            _Ranked(row, float(score), [i])
            for i, (row, score) in enumerate(zip(_rows(result), scores, strict=True))
        ]


def _fuse(lists: Sequence[Sequence[_Ranked]]) -> list[_Ranked]:
    """Reciprocal-rank fusion of ranked lists; ties go to the row ranked best in any list."""
    fused: dict[tuple[str, int], _Ranked] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, start=1):
            key = (item.row["unit"], item.row["ordinal"])
            entry = fused.setdefault(key, _Ranked(item.row, 0.0))
            entry.score += 1.0 / (RRF_K + rank)
            entry.ranks.append(rank)
    return sorted(fused.values(), key=lambda item: (-item.score, min(item.ranks)))


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def _hit(item: _Ranked) -> Hit:
    row = item.row
    columns: dict[str, Any] = {name: row.get(name) for name in _LOCATOR_COLUMNS}
    columns.update((name, row[name]) for name in _RESULT_COLUMNS)
    return Hit(score=item.score, **columns)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.select([*_RESULT_COLUMNS, *_LOCATOR_COLUMNS]).to_pylist()
    return rows


def _kind_filter(kinds: Sequence[str] | None) -> str | None:
    if not kinds:
        return None
    valid = set(row_kinds())
    unknown = [kind for kind in kinds if kind not in valid]
    if unknown:
        raise ValueError(f"unknown kind {unknown[0]!r}: choose from {', '.join(sorted(valid))}")
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in sorted(set(kinds))) + ")"


def _unit_counts(table: Any) -> dict[str, int]:
    if table.count_rows() == 0:
        return {}
    units = table.search().select(["unit"]).limit(None).to_arrow().column("unit")
    counts = pc.value_counts(units)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def _sql_id(unit: str) -> str:
    if not unit.isalnum():
        raise ValueError(f"unexpected unit id {unit!r}")
    return unit


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
